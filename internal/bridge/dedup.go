package bridge

import "sync"

// dedupWindow remembers the last events taken in, by subject, source and
// id, so that a broker's redelivery of what weft has already taken is
// dropped for volatile topics too, which have no dedup keys in the store.
// It is bounded: of a redelivery older than its window, a persisted
// topic's store still drops the copy; a volatile topic delivers it again,
// which at-most-once allows.
type dedupWindow struct {
	mu   sync.Mutex
	max  int
	keys map[string]struct{}
	ring []string
	next int
}

func newDedupWindow(max int) *dedupWindow {
	return &dedupWindow{max: max, keys: make(map[string]struct{}, max), ring: make([]string, max)}
}

func dedupKey(subject, source, id string) string { return subject + "\x00" + source + "\x00" + id }

func (d *dedupWindow) seen(subject, source, id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.keys[dedupKey(subject, source, id)]
	return ok
}

func (d *dedupWindow) add(subject, source, id string) {
	k := dedupKey(subject, source, id)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.keys[k]; ok {
		return
	}
	if old := d.ring[d.next]; old != "" {
		delete(d.keys, old)
	}
	d.ring[d.next], d.keys[k] = k, struct{}{}
	d.next = (d.next + 1) % d.max
}
