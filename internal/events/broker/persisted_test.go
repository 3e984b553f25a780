package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/resource"
)

// hopFrames is how many persisted entries from sent to its neighbour to.
func (m *mesh) hopFrames(from, to string) float64 {
	return testutil.ToFloat64(m.site(from).b.m.hopFrames.WithLabelValues(m.site(to).id.String()))
}

// tablesChanged tells every broker that the routes changed, as a site does
// when a record arrives; the mesh computes tables on demand and tells nobody.
func (m *mesh) tablesChanged() {
	for _, s := range m.sites {
		s.b.TableChanged()
	}
}

// persisted defines a persisted topic or queue at s.
func (s *meshSite) persisted(t testing.TB, kind events.Kind, name string) {
	t.Helper()
	var err error
	if kind == events.Topic {
		tp := resource.Topic{Spec: resource.TopicSpec{Delivery: resource.DeliveryPersisted, Retention: "1h"}}
		tp.Name = name
		err = s.b.PutTopic(tp)
	} else {
		q := resource.Queue{Spec: resource.QueueSpec{Delivery: resource.DeliveryPersisted}}
		q.Name = name
		err = s.b.PutQueue(q)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// publishBatches publishes events 0..n-1 at s, batch events per request.
func (s *meshSite) publishBatches(t testing.TB, kind events.Kind, subject string, n, batch int) {
	t.Helper()
	for i := 0; i < n; i += batch {
		evs := make([]cloudevent.Decoded, batch)
		for j := range evs {
			evs[j] = event(t, fmt.Sprint(i+j))
		}
		if err := s.b.Publish(context.Background(), kind, subject, evs); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPersistedTopicOncePerLink: on the line a-b-c-d with subscribers at c
// and d, each persisted event crosses each link once, stored at every hop,
// and reaches both.
func TestPersistedTopicOncePerLink(t *testing.T) {
	m := newMesh(t, []string{"a", "b", "c", "d"}, [][3]int{{1, 2, 1}, {2, 3, 1}, {3, 4, 1}})
	a := m.site("a")
	a.persisted(t, events.Topic, "x")
	c, d := m.site("c").drain(t, events.Topic, "x"), m.site("d").drain(t, events.Topic, ">")
	m.tablesChanged()
	const n = 300
	publish(t, a, events.Topic, "x", 0, n)
	waitFor(t, "c and d to get every event", func() bool { return len(c.got()) >= n && len(d.got()) >= n })
	wantOnce(t, "c", c.got(), n)
	wantOnce(t, "d", d.got(), n)
	for _, l := range [][2]string{{"a", "b"}, {"b", "c"}, {"c", "d"}} {
		if got := m.hopFrames(l[0], l[1]); got != n {
			t.Errorf("%v persisted frames on %s->%s, want %d", got, l[0], l[1], n)
		}
	}
}

// TestPersistedQueueNearest: on the line a-b-c with consumers at b and c, a
// persisted queue's events all go to b, the nearest, each once.
func TestPersistedQueueNearest(t *testing.T) {
	m := newMesh(t, []string{"a", "b", "c"}, [][3]int{{1, 2, 1}, {2, 3, 1}})
	a := m.site("a")
	a.persisted(t, events.Queue, "jobs")
	b, c := m.site("b").drain(t, events.Queue, "jobs"), m.site("c").drain(t, events.Queue, "jobs")
	m.tablesChanged()
	const n = 200
	publish(t, a, events.Queue, "jobs", 0, n)
	waitFor(t, "b to get every event", func() bool { return len(b.got()) >= n })
	wantOnce(t, "b", b.got(), n)
	if got := c.got(); len(got) != 0 {
		t.Errorf("c, farther than b, got %d events", len(got))
	}
	if got := m.hopFrames("b", "c"); got != 0 {
		t.Errorf("b forwarded %v entries of a queue it consumes", got)
	}
}

// TestStreamReadsMissedFromInbox: a persisted topic's events that overflow
// what a stream holds for a client that reads nothing are not lost: the
// stream reads them from the inbox once the client reads again.
func TestStreamReadsMissedFromInbox(t *testing.T) {
	was := streamPendingEvents
	t.Cleanup(func() { streamPendingEvents = was }) // after the stream's, so registered first
	streamPendingEvents = 16
	m := newMesh(t, []string{"a"}, nil)
	a := m.site("a")
	a.persisted(t, events.Topic, "t")
	sub := a.subscribe(t, events.Topic, "t")
	defer a.b.unsubscribe(sub)
	out := &blockedOut{release: make(chan struct{})}
	a.stream(t, sub, out)
	const n, batch = 3000, 100
	a.publishBatches(t, events.Topic, "t", n, batch)
	waitFor(t, "the stream to mark events missed", func() bool { return sub.missed.Load() != 0 || len(sub.wake) > 0 })
	close(out.release)
	waitFor(t, "every event at the client", func() bool { return distinct(out.got()) >= n })
	t.Logf("%d events at the client for %d published", len(out.got()), n)
	if d := dropped(a, "slow-consumer"); d != 0 {
		t.Errorf("%v dropped", d)
	}
}

func distinct(ids []string) int {
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	return len(seen)
}

// TestSlowSinkRefusesPublishers: a push subscription whose sink holds every
// request falls behind; once it has MaxBacklog events left, publishers of
// persisted events get ErrConsumerBehind (503 with Retry-After), and once
// the sink reads again they are taken again and nothing accepted is lost.
func TestSlowSinkRefusesPublishers(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil)
	a := m.site("a")
	a.b.cfg.MaxBacklog = 10
	a.persisted(t, events.Topic, "t")
	held, release := make(chan struct{}, 1), make(chan struct{})
	var mu sync.Mutex
	var got []string
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case held <- struct{}{}:
		default:
		}
		<-release
		mu.Lock()
		got = append(got, r.Header.Get("ce-id"))
		mu.Unlock()
	}))
	defer sink.Close()
	unhold := sync.OnceFunc(func() { close(release) })
	defer unhold() // before Close, which waits for the held requests
	var s resource.Subscription
	s.Name, s.Spec = "slow", resource.SubscriptionSpec{Topic: "t", Sink: sink.URL}
	a.putPush(t, s)
	accepted := 0
	var err error
	for ; accepted < 100; accepted++ {
		if err = a.b.Publish(context.Background(), events.Topic, "t", []cloudevent.Decoded{event(t, fmt.Sprint(accepted))}); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrConsumerBehind) || accepted < 10 || accepted > 11 {
		t.Fatalf("after %d accepted: %v, want ErrConsumerBehind after 10", accepted, err)
	}
	if e := toAPIError(err); e.Status != http.StatusServiceUnavailable || e.RetryAfter == 0 {
		t.Errorf("answered %d, Retry-After %d", e.Status, e.RetryAfter)
	}
	<-held // the sink holds the first event's request
	unhold()
	waitFor(t, "the sink to get every accepted event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= accepted
	})
	if err := a.b.Publish(context.Background(), events.Topic, "t", []cloudevent.Decoded{event(t, "after")}); err != nil {
		t.Errorf("publish once the sink caught up: %v", err)
	}
}

func TestSeqRange(t *testing.T) {
	var r seqRange
	for _, step := range []struct {
		extend, wantFrom uint64
		to               uint64 // what the read then reached
		in, out          []uint64
	}{
		{extend: 10, wantFrom: 10, to: 20, in: []uint64{11, 20}, out: []uint64{0, 10, 21}},
		{extend: 30, wantFrom: 20, to: 40, in: []uint64{11, 25, 40}, out: []uint64{10, 41}}, // a gap above is read from the top
		{extend: 4, wantFrom: 4, to: 45, in: []uint64{5, 45}, out: []uint64{4, 46}},         // below, the range grows down
	} {
		if got := r.extend(step.extend); got != step.wantFrom {
			t.Fatalf("extend(%d) = %d, want %d", step.extend, got, step.wantFrom)
		}
		r.to = step.to
		for _, s := range step.in {
			if !r.has(s) {
				t.Errorf("%+v lacks %d", r, s)
			}
		}
		for _, s := range step.out {
			if r.has(s) {
				t.Errorf("%+v has %d", r, s)
			}
		}
	}
}

// TestPersistedQueueSpillsWhenFull: on the line a-b-c with queue consumers
// at b and c, b's consumer takes nothing; once queueHighWater entries wait
// at b, b withdraws its interest and the rest go on to c, each event to one
// consumer only.
func TestPersistedQueueSpillsWhenFull(t *testing.T) {
	m := newMesh(t, []string{"a", "b", "c"}, [][3]int{{1, 2, 1}, {2, 3, 1}})
	a := m.site("a")
	a.persisted(t, events.Queue, "jobs")
	stuck := m.site("b").subscribe(t, events.Queue, "jobs")
	defer m.site("b").b.unsubscribe(stuck)
	c := m.site("c").drain(t, events.Queue, "jobs")
	m.tablesChanged()
	const n, batch = 4000, 100
	a.publishBatches(t, events.Queue, "jobs", n, batch)
	// b holds a channel's worth and the high-water mark, not a batch more:
	// a log stream's batch can hold up to a thousand entries.
	atC := n - cap(stuck.ch) - queueHighWater
	waitFor(t, fmt.Sprintf("c to get at least %d events", atC), func() bool { return len(c.got()) >= atC })
	seen := map[string]bool{}
	for _, id := range c.got() {
		seen[id] = true
	}
	for len(stuck.ch) > 0 {
		d := <-stuck.ch
		id, _ := unmarshalID(d.JSON)
		if seen[id] {
			t.Errorf("%s went to both b and c", id)
		}
	}
}

// TestPersistedQueueKeepsFlowing: a consumer that keeps up gets every event.
// Its worker hands entries out as soon as they are stored, sometimes before
// the store counts them; a count that ignored that grew with each such race
// until the site withdrew its interest for good.
func TestPersistedQueueKeepsFlowing(t *testing.T) {
	m := newMesh(t, []string{"a", "b"}, [][3]int{{1, 2, 1}})
	a := m.site("a")
	a.persisted(t, events.Queue, "jobs")
	b := m.site("b").drain(t, events.Queue, "jobs")
	m.tablesChanged()
	const n = 10000
	a.publishBatches(t, events.Queue, "jobs", n, 100)
	waitFor(t, "b to get every event", func() bool { return b.count() >= n })
	wantOnce(t, "b", b.got(), n)
}

// TestStreamInterestLingers: a stream subscriber's interest outlives its
// connection by streamLinger, so what a persisted topic gets while the
// client reconnects is stored at its site for it to resume from; then the
// site withdraws it.
func TestStreamInterestLingers(t *testing.T) {
	clk := newFakeClock()
	m := newMesh(t, []string{"a", "b"}, [][3]int{{1, 2, 1}}, withClock(clk))
	a, b := m.site("a"), m.site("b")
	a.persisted(t, events.Topic, "t")
	sub := b.subscribe(t, events.Topic, "t")
	m.tablesChanged()
	b.b.unsubscribe(sub) // the client's connection drops
	const n = 20
	a.publishBatches(t, events.Topic, "t", n, 10)
	waitFor(t, "b to store what was published while its client was away", func() bool {
		stored := 0
		b.b.st.ReadIn(0, func(uint64, store.Entry) bool { stored++; return true })
		return stored == n
	})
	clk.Step(streamLinger - time.Nanosecond)
	if !slices.Contains(b.b.Interests(), "t:t") {
		t.Fatalf("the interest ended before streamLinger: %v", b.b.Interests())
	}
	clk.Step(time.Nanosecond)
	waitFor(t, "b to withdraw the interest once streamLinger passed", func() bool { return len(b.announced()) == 0 })
}

// announced is what s's record carries now.
func (s *meshSite) announced() []string {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return slices.Clone(s.interests)
}

// maxAnnounced is the most interests s's record carried.
func (s *meshSite) maxAnnounced() int {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.most
}

// TestPushRetriesThenDeadLetter: a push subscription retries a sink that
// fails after each backoff of its policy, and gives the event to the
// dead-letter sink, marked with why, once the retries are spent.
func TestPushRetriesThenDeadLetter(t *testing.T) {
	clk := newFakeClock()
	m := newMesh(t, []string{"a"}, nil, withClock(clk))
	a := m.site("a")
	var mu sync.Mutex
	answers := []int{503, 503, 200, 503, 503, 503} // to the sink's requests, in order
	var atSink, atDead []string
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		atSink = append(atSink, r.Header.Get("ce-id"))
		w.WriteHeader(answers[len(atSink)-1])
	}))
	defer sink.Close()
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		atDead = append(atDead, r.Header.Get("ce-id")+" "+r.Header.Get("ce-knativeerrorcode"))
	}))
	defer dead.Close()
	requests := func() (int, []string) {
		mu.Lock()
		defer mu.Unlock()
		return len(atSink), slices.Clone(atDead)
	}
	var s resource.Subscription
	s.Name = "retrying"
	s.Spec = resource.SubscriptionSpec{Topic: "t", Sink: sink.URL, DeadLetter: dead.URL, Retry: 2, Backoff: "exponential", BackoffDelay: "1s"}
	a.putPush(t, s)

	// x: 503, 503 (after 1 s and 2 s of backoff), then taken.
	publish(t, a, events.Topic, "t", 0, 1)
	for i, backoff := range []time.Duration{time.Second, 2 * time.Second} {
		waitFor(t, fmt.Sprintf("the pusher to wait %v after attempt %d", backoff, i+1), func() bool { return clk.waited(backoff) == 1 })
		if n, _ := requests(); n != i+1 {
			t.Fatalf("the sink had %d requests before the backoff %v ended, want %d", n, backoff, i+1)
		}
		clk.Step(backoff)
	}
	waitFor(t, "the sink to take x at the third attempt", func() bool { n, _ := requests(); return n == 3 })
	waitFor(t, "x counted delivered", func() bool { return testutil.ToFloat64(a.b.m.delivered.WithLabelValues("push")) == 1 })

	// y: three 503s spend the two retries, and it goes to the dead letter.
	publish(t, a, events.Topic, "t", 1, 1)
	for i, backoff := range []time.Duration{time.Second, 2 * time.Second} {
		waitFor(t, fmt.Sprintf("the pusher to wait %v after y's attempt %d", backoff, i+1), func() bool { return clk.waited(backoff) == 2 })
		clk.Step(backoff)
	}
	waitFor(t, "y at the dead-letter sink", func() bool { _, d := requests(); return len(d) == 1 })
	if n, d := requests(); n != 6 || d[0] != "1 503" {
		t.Errorf("the sink had %d requests, want 6; the dead-letter sink got %q, want y (\"1\") with code 503", n, d)
	}
	if got := dropped(a, "push-failed"); got != 1 {
		t.Errorf("%v counted as push-failed, want 1", got)
	}
}

func pusherAt(b *Broker, name string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.pushes[name]; p != nil {
		return p.at.Load()
	}
	return 0
}
