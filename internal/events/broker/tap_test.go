package broker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
)

// tapRun runs t until ctx ends, recording the ids of what send got; fail
// decides whether a call fails (the broker down).
type tapRun struct {
	mu   sync.Mutex
	ids  []string
	fail func(call int) bool
	call int
}

func (r *tapRun) send(_ context.Context, js [][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.call++
	if r.fail != nil && r.fail(r.call) {
		return errors.New("broker down")
	}
	for _, j := range js {
		e, err := cloudevent.Unmarshal(j)
		if err != nil {
			return err
		}
		r.ids = append(r.ids, e.ID())
	}
	return nil
}

func (r *tapRun) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

// TestTapPersistedAtLeastOnce: a tap at B of a persisted topic published at
// A gets every event; a send that fails ends Run and the next Run sends the
// batch again from the stored cursor, so nothing is lost.
func TestTapPersistedAtLeastOnce(t *testing.T) {
	m := newMesh(t, []string{"a", "b"}, [][3]int{{1, 2, 1}})
	a, b := m.site("a"), m.site("b")
	a.persisted(t, events.Topic, "orders")
	tap, err := b.b.OpenTap("br/orders", "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	b.announcedWait(t, "t:orders")
	m.tablesChanged()

	// The first Run fails its second call, as a broker that goes down.
	r := &tapRun{fail: func(call int) bool { return call == 2 }}
	a.publishBatches(t, events.Topic, "orders", 1000, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tap.Run(ctx, r.send); err == nil || err.Error() != "broker down" {
		t.Fatalf("Run returned %v, want the send's error", err)
	}
	r.fail = nil
	done := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	go func() { done <- tap.Run(rctx, r.send) }()
	waitFor(t, "every event through the tap", func() bool { return distinct(r.got()) == 1000 })
	stop()
	<-done
}

// TestTapVolatile: a tap gets a volatile topic's events through its
// channel, a queue tap a volatile queue's, and a closed tap withdraws its
// interest.
func TestTapVolatile(t *testing.T) {
	t.Run("topic", func(t *testing.T) {
		testTapVolatile(t, events.Topic, func(b *Broker, p string) (*Tap, error) { return b.OpenTap("br/v", p) })
	})
	t.Run("queue", func(t *testing.T) { testTapVolatile(t, events.Queue, (*Broker).OpenQueueTap) })
}

func testTapVolatile(t *testing.T, kind events.Kind, open func(b *Broker, pattern string) (*Tap, error)) {
	m := newMesh(t, []string{"a"}, nil)
	a := m.site("a")
	tap, err := open(a.b, "v.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(a.b, "v..x"); !errors.Is(err, events.ErrBadSubject) {
		t.Fatalf("a bad pattern: %v, want ErrBadSubject", err)
	}
	a.announcedWait(t, events.Interest(kind, "v.>"))
	r := &tapRun{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tap.Run(ctx, r.send) }()
	publish(t, a, kind, "v.x", 0, 10)
	waitFor(t, "the volatile events", func() bool { return len(r.got()) == 10 })
	cancel()
	<-done
	tap.Close()
	if in := a.b.Interests(); len(in) != 0 {
		t.Fatalf("interests after Close: %v", in)
	}
}

// announcedWait waits until s announces the interest want.
func (s *meshSite) announcedWait(t testing.TB, want string) {
	t.Helper()
	waitFor(t, "the interest "+want+" to be announced", func() bool {
		s.m.mu.Lock()
		defer s.m.mu.Unlock()
		return slices.Contains(s.interests, want)
	})
}

// TestQueueTapPersistedAtLeastOnce: on the line a-b-c, a queue tap at b is
// the nearest consumer of a persisted queue published at a, ahead of a
// subscriber at c. A send that fails ends Run; the entry it held waits at b
// (the tap stays a consumer) and the next Run sends it: the tap gets every
// event, c none.
func TestQueueTapPersistedAtLeastOnce(t *testing.T) {
	m := newMesh(t, []string{"a", "b", "c"}, [][3]int{{1, 2, 1}, {2, 3, 1}})
	a, b := m.site("a"), m.site("b")
	a.persisted(t, events.Queue, "jobs")
	tap, err := b.b.OpenQueueTap("jobs")
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	c := m.site("c").drain(t, events.Queue, "jobs")
	b.announcedWait(t, "q:jobs")
	m.tablesChanged()

	r := &tapRun{fail: func(call int) bool { return call == 5 }}
	const n = 300
	a.publishBatches(t, events.Queue, "jobs", n, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tap.Run(ctx, r.send); err == nil || err.Error() != "broker down" {
		t.Fatalf("Run returned %v, want the send's error", err)
	}
	r.mu.Lock()
	r.fail = nil
	r.mu.Unlock()
	done := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	go func() { done <- tap.Run(rctx, r.send) }()
	waitFor(t, "every event through the tap", func() bool { return distinct(r.got()) == n })
	stop()
	<-done
	if got := c.got(); len(got) != 0 {
		t.Errorf("c, farther than the tap, got %d events", len(got))
	}
}
