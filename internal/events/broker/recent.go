package broker

import (
	"sync"

	"weft.dev/weft/internal/events/store"
)

// recentOut keeps the outbound entries committed last, as they were
// committed, so that a hop sends them without reading them back from the
// store: a read transaction and a decode per send, on the way of every
// persisted event, for entries this process has just written. It holds only
// what the store holds already (an entry is added after its commit), so a
// hop that finds a range incomplete here reads the store as before, and a
// restart loses nothing but the shortcut.
type recentOut struct {
	mu    sync.Mutex
	slots [recentSlots]recentEntry
}

// recentSlots bounds the entries kept, recentMaxPayload their size: at most
// 16 MiB of payloads, with room for a few sends of full batches in flight.
const (
	recentSlots      = 4096
	recentMaxPayload = 4 << 10
)

type recentEntry struct {
	off uint64 // 0: empty
	e   store.Entry
}

// add keeps the entry stored at off with the destinations it is for. The
// caller must not change e's slices afterwards: hops share them.
func (r *recentOut) add(off uint64, e store.Entry) {
	if len(e.Payload) > recentMaxPayload {
		return
	}
	r.mu.Lock()
	r.slots[off%recentSlots] = recentEntry{off, e}
	r.mu.Unlock()
}

// get appends to buf the entries at offsets (from, to] when it holds every
// one of them, and reports whether it did; buf is returned either way.
func (r *recentOut) get(from, to uint64, buf []recentEntry) ([]recentEntry, bool) {
	buf = buf[:0]
	if to <= from || to-from > recentSlots {
		return buf, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for off := from + 1; off <= to; off++ {
		s := r.slots[off%recentSlots]
		if s.off != off {
			return buf[:0], false
		}
		buf = append(buf, s)
	}
	return buf, true
}
