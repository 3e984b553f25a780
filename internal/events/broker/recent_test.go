package broker

import (
	"testing"

	"weft.dev/weft/internal/events/store"
)

// A hop may take from recentOut only a whole range it holds: a gap, an
// offset overwritten by a later one in its slot, or an entry too large to
// keep sends it to the store instead.
func TestRecentOutWholeRangesOnly(t *testing.T) {
	r := &recentOut{}
	for off := uint64(1); off <= 10; off++ {
		r.add(off, store.Entry{Subject: "s", Payload: []byte{byte(off)}})
	}
	got, ok := r.get(2, 5, nil)
	if !ok || len(got) != 3 || got[0].off != 3 || got[2].e.Payload[0] != 5 {
		t.Fatalf("get(2, 5) = %v, %v", got, ok)
	}
	for _, c := range []struct {
		from, to uint64
	}{{8, 11}, {5, 5}, {0, recentSlots + 1}} {
		if got, ok := r.get(c.from, c.to, nil); ok || len(got) != 0 {
			t.Errorf("get(%d, %d) = %v, true", c.from, c.to, got)
		}
	}
	r.add(3+recentSlots, store.Entry{})
	if _, ok := r.get(2, 5, nil); ok {
		t.Error("get(2, 5) took offset 3's slot, now offset 3+recentSlots's")
	}
	r.add(11, store.Entry{Payload: make([]byte, recentMaxPayload+1)})
	if _, ok := r.get(10, 11, nil); ok {
		t.Error("an entry over recentMaxPayload was kept")
	}
}
