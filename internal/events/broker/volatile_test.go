package broker

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
)

func dropped(s *meshSite, reason string) float64 {
	return testutil.ToFloat64(s.b.m.dropped.WithLabelValues(reason))
}

// TestMulticastOncePerLink: a publishes on a-b, b-c, b-d with subscribers
// at c (two) and d. Each subscriber gets every event once, and each event
// crosses a-b once although three subscribers lie beyond it.
func TestMulticastOncePerLink(t *testing.T) {
	m := newMesh(t, []string{"a", "b", "c", "d"}, [][3]int{{1, 2, 1}, {2, 3, 1}, {2, 4, 1}})
	c1, c2 := m.site("c").drain(t, events.Topic, "orders.>"), m.site("c").drain(t, events.Topic, "orders.*")
	d := m.site("d").drain(t, events.Topic, "orders.eu")
	const n = 500
	publish(t, m.site("a"), events.Topic, "orders.eu", 0, n)
	waitFor(t, "every subscriber to get every event", func() bool {
		return len(c1.got()) >= n && len(c2.got()) >= n && len(d.got()) >= n
	})
	wantOnce(t, "c's first subscriber", c1.got(), n)
	wantOnce(t, "c's second subscriber", c2.got(), n)
	wantOnce(t, "d", d.got(), n)
	for _, l := range [][2]string{{"a", "b"}, {"b", "c"}, {"b", "d"}} {
		if got := m.framesOn(l[0], l[1]); got != n {
			t.Errorf("%d frames on %s->%s, want %d", got, l[0], l[1], n)
		}
	}
	if got := m.framesOn("b", "a"); got != 0 {
		t.Errorf("%d frames went back to the publisher", got)
	}
}

// TestQueueAnycast: with consumers at a (the publisher), b and c on the line
// a-b-c, each event goes to exactly one consumer, the nearest: a's own.
// Without it, b's; a queue nobody consumes is refused.
func TestQueueAnycast(t *testing.T) {
	m := newMesh(t, []string{"a", "b", "c"}, [][3]int{{1, 2, 1}, {2, 3, 1}})
	a := m.site("a")
	if err := a.b.Publish(context.Background(), events.Queue, "jobs", []cloudevent.Decoded{event(t, "x")}); err != ErrNoConsumer {
		t.Fatalf("queue without consumers: %v, want ErrNoConsumer", err)
	}
	qb, qc := m.site("b").drain(t, events.Queue, "jobs"), m.site("c").drain(t, events.Queue, "jobs")
	const n = 300
	publish(t, a, events.Queue, "jobs", 0, n)
	waitFor(t, "b to get every job", func() bool { return len(qb.got()) >= n })
	wantOnce(t, "b", qb.got(), n)
	if got := qc.got(); len(got) != 0 {
		t.Errorf("c, farther than b, got %d jobs", len(got))
	}
	qa := a.drain(t, events.Queue, "jobs")
	publish(t, a, events.Queue, "jobs", n, n)
	waitFor(t, "a to get the next jobs", func() bool { return len(qa.got()) >= n })
	if len(qb.got()) != n || len(qc.got()) != 0 {
		t.Errorf("with a local consumer, b got %d and c %d more", len(qb.got())-n, len(qc.got()))
	}
}

// TestQueueSpill: on a-b-c, b's consumer takes nothing, so b has room for
// exactly one subscriber buffer of events. What it cannot take goes on to
// c, each event to one consumer; once c is full too, events are dropped
// and counted as queue-full, not lost silently.
func TestQueueSpill(t *testing.T) {
	m := newMesh(t, []string{"a", "b", "c"}, [][3]int{{1, 2, 1}, {2, 3, 1}})
	a, b, c := m.site("a"), m.site("b"), m.site("c")
	stuckB := b.subscribe(t, events.Queue, "jobs")
	defer b.b.unsubscribe(stuckB)
	qc := c.drain(t, events.Queue, "jobs")
	room := cap(stuckB.ch)
	n := room + 500
	publish(t, a, events.Queue, "jobs", 0, n)
	waitFor(t, "c to get what b had no room for", func() bool { return len(qc.got()) >= n-room })
	var all []string
	for len(stuckB.ch) > 0 {
		e := <-stuckB.ch
		ev, _ := unmarshalID(e.JSON)
		all = append(all, ev)
	}
	if len(all) != room {
		t.Errorf("b took %d, want %d", len(all), room)
	}
	wantOnce(t, "b and c together", append(all, qc.got()...), n)
	for _, s := range []*meshSite{a, b, c} {
		if got := dropped(s, "queue-full"); got != 0 {
			t.Errorf("%s dropped %v with room at c", s.name, got)
		}
	}

	// Now c's consumer stops taking too: b (refilled) and c absorb one
	// buffer each, the rest is dropped at the last site tried.
	stuckC := c.subscribe(t, events.Queue, "more")
	defer c.b.unsubscribe(stuckC)
	stuckB2 := b.subscribe(t, events.Queue, "more")
	defer b.b.unsubscribe(stuckB2)
	publish(t, a, events.Queue, "more", 0, 2*room+100)
	waitFor(t, "100 events dropped as queue-full", func() bool { return dropped(c, "queue-full") >= 100 })
	if len(stuckB2.ch) != room || len(stuckC.ch) != room || dropped(c, "queue-full") != 100 {
		t.Errorf("b took %d, c %d, dropped %v; want %d, %d, 100", len(stuckB2.ch), len(stuckC.ch), dropped(c, "queue-full"), room, room)
	}
}

func unmarshalID(b []byte) (string, error) {
	e, err := cloudevent.Unmarshal(b)
	return e.ID(), err
}

// TestSlowConsumerDropsCounted: a topic subscriber that does not read loses
// what overflows its buffer, counted as slow-consumer; a reading one at
// the same site gets everything.
//
// Volatile delivery never waits for a subscriber, the reading one included:
// if its goroutine is not scheduled while a burst larger than its channel
// arrives (a loaded machine), it loses the overflow too. So the events come
// in two bursts that each fit a channel whole: the first fills the slow
// subscriber's; the second, sent once the reading one has taken the first,
// overflows only the slow one.
func TestSlowConsumerDropsCounted(t *testing.T) {
	m := newMesh(t, []string{"a", "b"}, [][3]int{{1, 2, 1}})
	b := m.site("b")
	slow := b.subscribe(t, events.Topic, "t")
	defer b.b.unsubscribe(slow)
	fast := b.drain(t, events.Topic, "t")
	room := cap(slow.ch)
	n := room + 100
	publish(t, m.site("a"), events.Topic, "t", 0, room)
	waitFor(t, "the reading subscriber to take the first burst", func() bool { return fast.count() >= room })
	publish(t, m.site("a"), events.Topic, "t", room, n-room)
	waitFor(t, "the reading subscriber to get everything", func() bool { return fast.count() >= n })
	wantOnce(t, "the reading subscriber", fast.got(), n)
	if len(slow.ch) != cap(slow.ch) || dropped(b, "slow-consumer") != 100 {
		t.Errorf("slow subscriber holds %d, %v dropped; want %d, 100", len(slow.ch), dropped(b, "slow-consumer"), cap(slow.ch))
	}
}

// stream runs sub's stream into out until the test ends.
func (s *meshSite) stream(t *testing.T, sub *subscriber, out streamOut) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.b.stream(ctx, sub, 0, false, out)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// blockedOut is a stream client that reads nothing until released.
type blockedOut struct {
	release chan struct{}
	mu      sync.Mutex
	ids     []string
}

func (o *blockedOut) send(seq uint64, event []byte) error {
	<-o.release
	id, err := unmarshalID(event)
	o.mu.Lock()
	o.ids = append(o.ids, id)
	o.mu.Unlock()
	return err
}

func (o *blockedOut) got() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.ids)
}

func (o *blockedOut) flush() error     { return nil }
func (o *blockedOut) keepalive() error { return nil }
func (o *blockedOut) name() string     { return "test" }

// TestStreamAbsorbsBursts: while a stream's client reads nothing, what
// comes waits in what the stream holds pending, several times the subscriber's
// channel, and is written once the client reads again; nothing is dropped.
func TestStreamAbsorbsBursts(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil)
	a := m.site("a")
	sub := a.subscribe(t, events.Topic, "t")
	defer a.b.unsubscribe(sub)
	out := &blockedOut{release: make(chan struct{})}
	a.stream(t, sub, out)
	n := 5 * cap(sub.ch)
	for i := 0; i < n; i += cap(sub.ch) / 2 {
		publish(t, a, events.Topic, "t", i, cap(sub.ch)/2)
		waitFor(t, "the stream to take the channel's events", func() bool { return len(sub.ch) == 0 })
	}
	close(out.release)
	waitFor(t, "every event at the client", func() bool { return len(out.got()) >= n })
	wantOnce(t, "the client", out.got(), n)
	if d := dropped(a, "slow-consumer"); d != 0 {
		t.Errorf("%v dropped", d)
	}
}
