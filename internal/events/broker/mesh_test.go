package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	clocktesting "k8s.io/utils/clock/testing"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mesh joins brokers without sockets: event streams are net.Pipe pairs and
// every site's route table is computed from the links and the interests the
// brokers last announced, at the moment it is asked for, so interest needs no
// time to travel.
type mesh struct {
	t      testing.TB
	ctx    context.Context
	mu     sync.Mutex // guards frames and the sites' interests
	sites  map[siteid.ID]*meshSite
	links  [][3]int // site, site, cost
	wg     sync.WaitGroup
	frames map[[2]siteid.ID]int // tree frames written, by (from, to) link
}

type meshSite struct {
	m    *mesh
	id   siteid.ID
	name string
	b    *Broker
	// interests are what b last announced, as its record would carry
	// them: Table runs under b's lmu and so must not ask b.
	interests []string
	// announce wakes the site's router goroutine (route).
	announce chan struct{}
	// held, while locked, keeps the router goroutine from announcing.
	held sync.Mutex
	// most is the largest number of interests announced; under m.mu.
	most int

	mu       sync.Mutex // guards the table, cached for tableKey
	table    *routing.Table
	tableKey string
}

var _ Net = (*meshSite)(nil)

func sid(i int) siteid.ID { return siteid.ID{byte(i)} }

// newMesh starts one broker per name (site IDs 1, 2, ... in order), with
// each option applied to its Config, and stops them all when the test ends.
func newMesh(t testing.TB, names []string, links [][3]int, opts ...func(*Config)) *mesh {
	ctx, cancel := context.WithCancel(context.Background())
	m := &mesh{t: t, ctx: ctx, sites: map[siteid.ID]*meshSite{}, links: links, frames: map[[2]siteid.ID]int{}}
	var stores []*store.Store
	for i, name := range names {
		s := &meshSite{m: m, id: sid(i + 1), name: name, announce: make(chan struct{}, 1)}
		st, err := store.Open(filepath.Join(t.TempDir(), name+".db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
		cfg := Config{Self: s.id, Net: s, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()}
		for _, o := range opts {
			o(&cfg)
		}
		s.b, err = New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.sites[s.id] = s
	}
	for _, s := range m.sites {
		s.b.Run(ctx)
	}
	// Once every broker runs: routing calls TableChanged on them all.
	for _, s := range m.sites {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			s.route(ctx)
		}()
		s.InterestsChanged() // the first record carries what New restored
	}
	t.Cleanup(func() {
		cancel()
		for _, s := range m.sites {
			s.b.Wait()
		}
		m.wg.Wait()
		for _, st := range stores {
			st.Close()
		}
	})
	return m
}

func (m *mesh) site(name string) *meshSite {
	for _, s := range m.sites {
		if s.name == name {
			return s
		}
	}
	m.t.Fatalf("no site %s", name)
	return nil
}

// Table computes the routes anew whenever an interest changed, as a site's
// router would.
func (s *meshSite) Table() *routing.Table {
	m := s.m
	recs := map[siteid.ID]*routing.Record{}
	var key strings.Builder
	m.mu.Lock()
	for id, o := range m.sites {
		recs[id] = &routing.Record{Site: id, Name: o.name, Seq: 1, Interests: o.interests}
	}
	m.mu.Unlock()
	for i := range len(m.sites) {
		key.WriteString(strings.Join(recs[sid(i+1)].Interests, " "))
		key.WriteByte('\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.table != nil && s.tableKey == key.String() {
		return s.table
	}
	for _, l := range m.links {
		a, b := sid(l[0]), sid(l[1])
		recs[a].Links = append(recs[a].Links, routing.Link{Peer: b, Cost: uint32(l[2])})
		recs[b].Links = append(recs[b].Links, routing.Link{Peer: a, Cost: uint32(l[2])})
	}
	r := routing.New(s.id, s.name, 0)
	r.SetLocal(recs[s.id].Links, nil, recs[s.id].Interests)
	for id, rec := range recs {
		if id != s.id {
			r.Step(id, *rec)
		}
	}
	s.table, s.tableKey = r.Table(), key.String()
	return s.table
}

// Open connects to the far end's broker directly; the sites in between
// would only relay bytes.
func (s *meshSite) Open(ctx context.Context, path []siteid.ID, tag string) (net.Conn, error) {
	far := s.m.sites[path[len(path)-1]]
	if far == nil {
		return nil, fmt.Errorf("no site %v", path[len(path)-1])
	}
	near, end := net.Pipe()
	s.m.wg.Add(1)
	go func() {
		defer s.m.wg.Done()
		far.b.ServeStream(end, tag, s.id)
	}()
	if tag != TagTree {
		return near, nil
	}
	return &countingConn{Conn: near, m: s.m, link: [2]siteid.ID{s.id, far.id}}, nil
}

// subscribe subscribes at s and waits until the mesh has s's interest, as
// a client of a real site would wait for its subscription to be announced.
func (s *meshSite) subscribe(t testing.TB, kind events.Kind, pattern string) *subscriber {
	sub, err := s.b.subscribe(kind, pattern, "test")
	if err != nil {
		t.Fatal(err)
	}
	s.announcedWait(t, events.Interest(kind, pattern))
	return sub
}

// InterestsChanged wakes the site's router goroutine, as a site does: the
// broker calls it under its lock.
func (s *meshSite) InterestsChanged() {
	select {
	case s.announce <- struct{}{}:
	default: // a wake-up is pending, and reads the interests after this
	}
}

// route is the site's router goroutine: it announces the broker's interests,
// read when woken, and tells every broker that the tables changed, as the
// record reaching them would.
func (s *meshSite) route(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.announce:
		}
		s.held.Lock()
		s.held.Unlock()
		in := s.b.Interests()
		s.m.mu.Lock()
		s.interests = in
		s.most = max(s.most, len(in))
		s.m.mu.Unlock()
		s.m.tablesChanged()
	}
}

// countingConn counts the frames written on a tree stream. Its one writer
// batches frames and splits them where its buffer ends, so the count
// follows the length prefixes across writes.
type countingConn struct {
	net.Conn
	m    *mesh
	link [2]siteid.ID
	hdr  []byte // the part of a length prefix seen so far
	rest int    // bytes of the current frame still to come
}

func (c *countingConn) Write(p []byte) (int, error) {
	n := 0
	for b := p; len(b) > 0; {
		if c.rest > 0 {
			k := min(c.rest, len(b))
			c.rest, b = c.rest-k, b[k:]
			continue
		}
		k := min(4-len(c.hdr), len(b))
		c.hdr, b = append(c.hdr, b[:k]...), b[k:]
		if len(c.hdr) == 4 {
			c.rest, c.hdr = int(binary.BigEndian.Uint32(c.hdr)), c.hdr[:0]
			n++
		}
	}
	c.m.mu.Lock()
	c.m.frames[c.link] += n
	c.m.mu.Unlock()
	return c.Conn.Write(p)
}

func (m *mesh) framesOn(from, to string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.frames[[2]siteid.ID{m.site(from).id, m.site(to).id}]
}

// event makes a CloudEvent as the HTTP API would have accepted it.
func event(t testing.TB, id string) cloudevent.Decoded { return eventData(t, id, nil) }

// eventData is event with data, as text, when not nil.
func eventData(t testing.TB, id string, data []byte) cloudevent.Decoded {
	var e cloudevent.Event
	e.SetSpecVersion("1.0") // first: it makes the context the others set
	e.SetID(id)
	e.SetSource("/test")
	e.SetType("t")
	if data != nil {
		if err := e.SetData("text/plain", data); err != nil {
			t.Fatal(err)
		}
	}
	b, err := cloudevent.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return cloudevent.Decoded{Event: e, JSON: b}
}

func publish(t *testing.T, s *meshSite, kind events.Kind, subject string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.b.Publish(context.Background(), kind, subject, []cloudevent.Decoded{event(t, fmt.Sprint(i))}); err != nil {
			t.Fatalf("publish %d at %s: %v", i, s.name, err)
		}
	}
}

// drain collects what a subscriber receives until the test ends.
type drain struct {
	mu  sync.Mutex
	ids []string
}

func (s *meshSite) drain(t testing.TB, kind events.Kind, pattern string) *drain {
	d := &drain{}
	s.consume(t, kind, pattern, func(dl delivery) {
		e, err := cloudevent.Unmarshal(dl.JSON)
		if err != nil {
			t.Errorf("bad event at %s: %v", s.name, err)
		}
		d.mu.Lock()
		d.ids = append(d.ids, e.ID())
		d.mu.Unlock()
	})
	return d
}

// consume subscribes at s and hands what comes to f, in a goroutine of its
// own, until the test ends.
func (s *meshSite) consume(t testing.TB, kind events.Kind, pattern string, f func(delivery)) {
	sub := s.subscribe(t, kind, pattern)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case dl := <-sub.ch:
				f(dl)
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		s.b.unsubscribe(sub)
	})
}

func (d *drain) got() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.ids)
}

func (d *drain) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ids)
}

// fakeClock is a fake clock that counts the waits (After) it is asked for,
// so that a test moves time on only once the code under test waits: a wait
// asked for after the step would never end.
type fakeClock struct {
	*clocktesting.FakeClock
	mu    sync.Mutex
	waits map[time.Duration]int
}

func newFakeClock() *fakeClock {
	return &fakeClock{FakeClock: clocktesting.NewFakeClock(time.Unix(1_000_000_000, 0)), waits: map[time.Duration]int{}}
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := c.FakeClock.After(d) // first: a step from now on ends it
	c.mu.Lock()
	c.waits[d]++
	c.mu.Unlock()
	return ch
}

// waited reports how many waits of d were asked for.
func (c *fakeClock) waited(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waits[d]
}

// withClock makes the brokers of a mesh read time from c.
func withClock(c *fakeClock) func(*Config) { return func(cfg *Config) { cfg.Clock = c } }

// waitFor polls cond until it holds or 10 s have passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// wantOnce checks that ids holds 0..n-1, each once.
func wantOnce(t *testing.T, who string, ids []string, n int) {
	t.Helper()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("%s got %s twice", who, id)
		}
		seen[id] = true
	}
	for i := range n {
		if !seen[fmt.Sprint(i)] {
			t.Errorf("%s lacks %d (got %d events)", who, i, len(ids))
			return
		}
	}
	if len(seen) != n {
		t.Errorf("%s got %d distinct events, want %d", who, len(seen), n)
	}
}
