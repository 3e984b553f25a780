package broker

import (
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/events"
)

// TestInterestSet drives the interest bookkeeping step by step: holding,
// releasing with and without linger, the limit, lingering interests giving
// way soonest-ending first, a replaced subscription's room, rooms reserved
// for subscriptions being stored, expiry, and queues left out while full.
func TestInterestSet(t *testing.T) {
	t0 := time.Unix(1000, 0)
	topic := func(p string) interest { return interest{events.Topic, p} }
	queue := func(p string) interest { return interest{events.Queue, p} }
	s := newInterestSet(3)
	full := map[string]bool{}
	type step struct {
		what string
		do   func() string // "" or what admit answered
		want string        // the listed interests after it, then any answer
	}
	admit := func(in interest, replacing *interest) func() string {
		return func() string {
			ok, evicted := s.admit(in, replacing)
			switch {
			case !ok:
				return " refused"
			case evicted:
				return " evicted"
			}
			return ""
		}
	}
	do := func(f func()) func() string { return func() string { f(); return "" } }
	for _, st := range []step{
		{"hold a twice", do(func() { s.hold(topic("a")); s.hold(topic("a")) }), "t:a"},
		{"hold queue j", do(func() { s.hold(queue("j")) }), "q:j t:a"},
		{"release a once: one holder left", do(func() { s.release(topic("a"), t0.Add(time.Minute)) }), "q:j t:a"},
		{"release a again: it lingers", do(func() { s.release(topic("a"), t0.Add(time.Minute)) }), "q:j t:a"},
		{"hold b", do(func() { s.hold(topic("b")) }), "q:j t:a t:b"},
		{"admit b, held", admit(topic("b"), nil), "q:j t:a t:b"},
		{"admit a, lingering", admit(topic("a"), nil), "q:j t:a t:b"},
		{"admit c: a makes room", admit(topic("c"), nil), "q:j t:b evicted"},
		{"hold c", do(func() { s.hold(topic("c")) }), "q:j t:b t:c"},
		{"admit d: all held", admit(topic("d"), nil), "q:j t:b t:c refused"},
		{"admit d replacing queue j, held once", admit(topic("d"), new(queue("j"))), "q:j t:b t:c"},
		{"hold j again", do(func() { s.hold(queue("j")) }), "q:j t:b t:c"},
		{"admit d replacing j, held twice", admit(topic("d"), new(queue("j"))), "q:j t:b t:c refused"},
		{"j full: left out, still counted", do(func() { full["j"] = true }), "t:b t:c"},
		{"admit d", admit(topic("d"), nil), "t:b t:c refused"},
		{"release j twice, no linger for queues", do(func() { s.release(queue("j"), t0); s.release(queue("j"), t0) }), "t:b t:c"},
		{"reserve e", do(func() { s.reserve(topic("e")) }), "t:b t:c"},
		{"admit f: e's room is taken", admit(topic("f"), nil), "t:b t:c refused"},
		{"admit e: being added", admit(topic("e"), nil), "t:b t:c"},
		{"done e", do(func() { s.done(topic("e")) }), "t:b t:c"},
		{"release b (ends t0+2m), c (t0+1m)", do(func() { s.release(topic("b"), t0.Add(2*time.Minute)); s.release(topic("c"), t0.Add(time.Minute)) }), "t:b t:c"},
		{"hold x", do(func() { s.hold(topic("x")) }), "t:b t:c t:x"},
		{"admit y: c, ending sooner, goes", admit(topic("y"), nil), "t:b t:x evicted"},
		{"expire at t0+2m: b", do(func() { s.expire(t0.Add(2 * time.Minute)) }), "t:x"},
	} {
		answer := st.do()
		if got := strings.Join(s.list(func(q string) bool { return full[q] }), " ") + answer; got != st.want {
			t.Fatalf("%s: got %q, want %q", st.what, got, st.want)
		}
	}
	if len(s.held) != 1 || len(s.adding) != 0 || len(s.lingering) != 0 {
		t.Errorf("left: held %v, adding %v, lingering %v; want x held only", s.held, s.adding, s.lingering)
	}
}
