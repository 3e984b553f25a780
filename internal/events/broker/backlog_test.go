package broker

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/ledger"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/observe/labelcap"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/siteid"
)

func TestQueueOutCounts(t *testing.T) {
	q := newQueueOut()
	jobs, mail := events.QueueSite("jobs"), events.QueueSite("mail")
	// Appended out of order, as concurrent batches may report them.
	for _, off := range []uint64{3, 1, 2, 5} {
		q.appended("jobs", off)
	}
	q.appended("jobs", 5) // the same entry again is one entry
	q.appended("mail", 4)
	if got, want := q.counts(), map[string]int{"jobs": 4, "mail": 1}; !maps.Equal(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	q.acked(jobs, 2)
	q.acked(siteid.ID{9}, 5) // a site, not a queue: no change
	if got, want := q.counts(), map[string]int{"jobs": 2, "mail": 1}; !maps.Equal(got, want) {
		t.Fatalf("after jobs acked to 2: %v, want %v", got, want)
	}
	q.acked(jobs, 4) // between entries
	q.deleted(mail)
	if got, want := q.counts(), map[string]int{"jobs": 1}; !maps.Equal(got, want) {
		t.Fatalf("after jobs acked to 4 and mail deleted: %v, want %v", got, want)
	}
	q.acked(jobs, 5)
	if got := q.counts(); len(got) != 0 || len(q.names) != 0 {
		t.Fatalf("everything acked, still %v (names %v)", got, q.names)
	}
}

// TestQueueBacklogWithoutConsumer: a persisted queue's events published
// while no consumer is reachable are its backlog at the publishing site,
// until a consumer appears and takes them; the per-address counters count
// them published there and delivered at the consumer's site.
func TestQueueBacklogWithoutConsumer(t *testing.T) {
	m := newMesh(t, []string{"a", "b"}, [][3]int{{1, 2, 1}})
	a, b := m.site("a"), m.site("b")
	a.persisted(t, events.Queue, "jobs")
	const n = 7
	publish(t, a, events.Queue, "jobs", 0, n)
	if got := a.b.queueBacklogs()["jobs"]; got != n {
		t.Fatalf("backlog of jobs at a with no consumer = %d, want %d", got, n)
	}
	if got := testutil.ToFloat64(a.b.m.addrPublished.WithLabelValues("queue", "jobs")); got != n {
		t.Errorf("published{queue,jobs} at a = %v, want %d", got, n)
	}
	d := b.drain(t, events.Queue, "jobs")
	m.tablesChanged()
	waitFor(t, "b's consumer to take every event", func() bool { return d.count() >= n })
	waitFor(t, "the backlog to empty at both sites", func() bool {
		return len(a.b.queueBacklogs()) == 0 && len(b.b.queueBacklogs()) == 0
	})
	if got := testutil.ToFloat64(b.b.m.addrDelivered.WithLabelValues("queue", "jobs")); got != n {
		t.Errorf("delivered{queue,jobs} at b = %v, want %d", got, n)
	}
}

// TestAddressNamesFolded: past MaxAddressLabels names, events are counted
// under (other), and the folding is counted.
func TestAddressNamesFolded(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil, func(c *Config) { c.MaxAddressLabels = 2 })
	a := m.site("a")
	for i, name := range []string{"t1", "t2", "t3", "t4", "t1"} {
		publish(t, a, events.Topic, name, i, 1)
	}
	if got := testutil.CollectAndCount(a.b.m.addrPublished); got != 3 {
		t.Errorf("%d published series, want 3 (two names and (other))", got)
	}
	for name, want := range map[string]float64{"t1": 2, "t2": 1, labelcap.Other: 2} {
		if got := testutil.ToFloat64(a.b.m.addrPublished.WithLabelValues("topic", name)); got != want {
			t.Errorf("published{topic,%s} = %v, want %v", name, got, want)
		}
	}
	if got := testutil.ToFloat64(a.b.m.folded); got != 2 {
		t.Errorf("folded = %v, want 2", got)
	}
}

// TestQueueOutRestored: after a restart, a queue's entries in the outbound
// log past its stored cursor are its backlog again; a topic's are not.
func TestQueueOutRestored(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "a.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	jobs, peer := events.QueueSite("jobs"), siteid.ID{2}
	var ps []store.Put
	for i := range 5 {
		ps = append(ps, store.Put{Entry: store.Entry{Kind: byte(events.Queue), Subject: "jobs", Payload: []byte("{}")},
			Source: "/t", ID: fmt.Sprint("j", i), Dests: []siteid.ID{jobs}, Publish: true})
	}
	ps = append(ps, store.Put{Entry: store.Entry{Kind: byte(events.Topic), Subject: "orders", Payload: []byte("{}")},
		Source: "/t", ID: "o", Dests: []siteid.ID{peer}, Publish: true})
	if err := st.Put(ps); err != nil {
		t.Fatal(err)
	}
	head, _, err := st.Heads()
	if err != nil {
		t.Fatal(err)
	}
	// The next hop toward jobs's consumer stored its first two entries.
	b := &Broker{st: st, qout: newQueueOut()}
	dests := map[siteid.ID]ledger.Dest{jobs: {Acked: ps[1].Out}, peer: {}}
	if err := b.restoreQueueOut(head, dests); err != nil {
		t.Fatal(err)
	}
	if got, want := b.qout.counts(), map[string]int{"jobs": 3}; !maps.Equal(got, want) {
		t.Fatalf("restored %v, want %v", got, want)
	}
}

// TestSubscriptionBacklog: a push subscription whose sink holds the first
// event has the events published since as its backlog, until the sink lets
// them through.
func TestSubscriptionBacklog(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil)
	a := m.site("a")
	a.persisted(t, events.Topic, "t")
	release := make(chan struct{})
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(http.StatusAccepted)
	}))
	defer sink.Close()
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	defer open()
	pushTo(t, a, "slow", "t", sink.URL)
	publish(t, a, events.Topic, "t", 0, 4)
	if got := a.b.subscriptionBacklogs()["slow"]; got != 4 {
		t.Fatalf("backlog of slow with its sink holding = %d, want 4", got)
	}
	open()
	waitFor(t, "the backlog to empty", func() bool { return a.b.subscriptionBacklogs()["slow"] == 0 })
}

// TestVolatilePushCountedOnce: a volatile event pushed to a sink is one
// delivery, counted when the sink takes it, not also when the push
// subscription's queue does.
func TestVolatilePushCountedOnce(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil)
	a := m.site("a")
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	defer sink.Close()
	pushTo(t, a, "fast", "v", sink.URL)
	publish(t, a, events.Topic, "v", 0, 1)
	waitFor(t, "the push counted", func() bool { return testutil.ToFloat64(a.b.m.delivered.WithLabelValues("push")) == 1 })
	if got := testutil.ToFloat64(a.b.m.addrDelivered.WithLabelValues("topic", "v")); got != 1 {
		t.Errorf("delivered{topic,v} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(a.b.m.delivered.WithLabelValues("topic")); got != 0 {
		t.Errorf(`delivered{kind="topic"} = %v, want 0: the only consumer is a push subscription`, got)
	}
}

// pushTo creates a push subscription at s from topic to sink; see putPush.
func pushTo(t *testing.T, s *meshSite, name, topic, sink string) {
	t.Helper()
	var sub resource.Subscription
	sub.Name = name
	sub.Spec = resource.SubscriptionSpec{Topic: topic, Sink: sink}
	s.putPush(t, sub)
}

// putPush creates the push subscription sub at s and waits for its pusher
// to start and its interest to be announced: until then a volatile event
// published at s has no route here and is not delivered.
func (s *meshSite) putPush(t *testing.T, sub resource.Subscription) {
	t.Helper()
	if err := s.b.PutSubscription(sub); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pusher to start", func() bool { return pusherAt(s.b, sub.Name) != 0 })
	s.announcedWait(t, events.Interest(events.Topic, sub.Spec.Topic))
}
