package service

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	clocktesting "k8s.io/utils/clock/testing"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/forward/forwardtest"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// world is a network of sites for the service tests: the data path is a
// forwardtest.Mesh (real link sessions over net.Pipe, streams relayed by
// forward.Serve), each site runs a Manager, and each site's route table is
// computed by a routing.Router from every site's record, as a real site's
// is once flooding settled. Time is one fake clock for all sites.
type world struct {
	t     testing.TB
	mesh  *forwardtest.Mesh
	clock *clocktesting.FakeClock

	mu    sync.Mutex
	sites []*testSite
	links map[[2]siteid.ID]uint32 // both directions, with their cost
}

// testSite is one site of a world: the Network of its Manager.
type testSite struct {
	name  string
	w     *world
	fs    *forwardtest.Site
	m     *Manager
	table atomic.Pointer[routing.Table]
	old   atomic.Bool // serves no framed HTTP streams
}

func (s *testSite) Table() *routing.Table { return s.table.Load() }

func (s *testSite) OpenStream(ctx context.Context, h *forward.Header) (net.Conn, error) {
	return forward.Open(ctx, s.fs, h)
}

var _ Network = (*testSite)(nil)

// serve delivers a service stream to the site's Manager, as internal/site
// does. A site marked old serves no framed HTTP streams, as a site from
// before them.
func (s *testSite) serve(st *link.Stream, h *forward.Header) {
	switch {
	case h.Kind == forward.KindTCP:
		s.m.ServeStream(st, h)
	case h.Kind == forward.KindHTTP:
		s.m.ServeHTTPStream(st, h)
	case h.Kind == forward.KindHTTPFrame && !s.old.Load():
		s.m.ServeHTTPFrameStream(st, h)
	default:
		st.Reject(forward.RejectUnknownKind, "not a service stream")
	}
}

// newWorld returns a world of sites with the given names and no links.
// Every Manager is closed when the test ends, before the mesh.
func newWorld(t testing.TB, names ...string) *world {
	w := &world{
		t:     t,
		mesh:  forwardtest.New(t),
		clock: clocktesting.NewFakeClock(time.Unix(1_000_000, 0)),
		links: map[[2]siteid.ID]uint32{},
	}
	for i, n := range names {
		s := &testSite{name: n, w: w, fs: w.mesh.Site(n)}
		s.m = NewManager(Config{
			Self: s.fs.ID, Net: s, Clock: w.clock,
			Rand:           rand.New(rand.NewPCG(uint64(i), 1)),
			ConnectTimeout: 5 * time.Second,
		})
		s.fs.SetDeliver(s.serve)
		w.sites = append(w.sites, s)
	}
	w.route()
	t.Cleanup(func() {
		for _, s := range w.sites {
			s.m.Close()
		}
	})
	return w
}

func (w *world) site(name string) *testSite {
	for _, s := range w.sites {
		if s.name == name {
			return s
		}
	}
	w.t.Fatalf("no site %s", name)
	return nil
}

// link joins sites a and b with a link of the given cost both ways.
func (w *world) link(a, b string, cost uint32) {
	sa, sb := w.site(a), w.site(b)
	w.mesh.Link(sa.fs, sb.fs)
	w.mu.Lock()
	w.links[[2]siteid.ID{sa.fs.ID, sb.fs.ID}] = cost
	w.links[[2]siteid.ID{sb.fs.ID, sa.fs.ID}] = cost
	w.mu.Unlock()
	w.route()
}

// unlink removes the link between a and b, session and records.
func (w *world) unlink(a, b string) {
	sa, sb := w.site(a), w.site(b)
	w.mu.Lock()
	delete(w.links, [2]siteid.ID{sa.fs.ID, sb.fs.ID})
	delete(w.links, [2]siteid.ID{sb.fs.ID, sa.fs.ID})
	w.mu.Unlock()
	w.route()
	w.mesh.Unlink(sa.fs, sb.fs)
}

// route recomputes every site's table from every site's record and tells
// the Managers.
func (w *world) route() {
	w.mu.Lock()
	defer w.mu.Unlock()
	recs := make([]routing.Record, len(w.sites))
	for i, s := range w.sites {
		recs[i] = routing.Record{Site: s.fs.ID, Name: s.name, Seq: 1, Connectors: s.m.Advertised()}
		for k, cost := range w.links {
			if k[0] == s.fs.ID {
				recs[i].Links = append(recs[i].Links, routing.Link{Peer: k[1], Cost: cost})
			}
		}
		slices.SortFunc(recs[i].Links, func(x, y routing.Link) int { return x.Peer.Compare(y.Peer) })
	}
	for i, s := range w.sites {
		r := routing.New(s.fs.ID, s.name, 0)
		r.SetLocal(recs[i].Links, recs[i].Connectors, nil)
		for j, rec := range recs {
			if j != i {
				r.Step(rec.Site, rec)
			}
		}
		s.table.Store(r.Table())
	}
	for _, s := range w.sites {
		s.m.TableChanged()
	}
}

// connector adds a connector at site and floods it.
func (w *world) connector(site string, c resource.Connector) {
	w.t.Helper()
	if err := c.Default(); err != nil {
		w.t.Fatal(err)
	}
	w.site(site).m.SetConnector(c)
	w.route()
}

// listener opens a listener at site and returns where it listens.
func (w *world) listener(site string, l resource.Listener) string {
	w.t.Helper()
	if err := l.Default(); err != nil {
		w.t.Fatal(err)
	}
	addr, err := w.site(site).m.SetListener(l)
	if err != nil {
		w.t.Fatal(err)
	}
	return addr.String()
}

// states is site's balancing state of address by site name.
func (w *world) states(site, address string) map[string]balanceState {
	out := map[string]balanceState{}
	for id, st := range w.site(site).m.CandidateStates(address) {
		for _, s := range w.sites {
			if s.fs.ID.String() == id {
				out[s.name] = balanceState{Status: st.Status, Errors: st.ConsecutiveErrors, InFlight: st.InFlight, Connections: st.Connections}
			}
		}
	}
	return out
}

type balanceState struct {
	Status                string
	Errors                int
	InFlight, Connections uint32
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// refusedAddr is a loopback address where nothing listens.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// tcpServer is a TCP target whose connections handle serves; it counts
// them. The test's end closes them and waits for handle to return.
type tcpServer struct {
	addr  string
	conns atomic.Int64
}

func startTCP(t *testing.T, handle func(net.Conn)) *tcpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// startEcho starts a TCP target that reads until the client half-closes,
// then answers "got " and what it read, and closes.
func startEcho(t *testing.T) *tcpServer {
	return startTCP(t, func(c net.Conn) {
		b, err := io.ReadAll(c)
		if err == nil {
			c.Write(append([]byte("got "), b...))
		}
	})
}

// backend is an HTTP target that names itself in its answers unless a
// test set its handler. Handlers that hold a request must also end when
// stop is closed, which happens before the server closes.
type backend struct {
	name    string
	addr    string
	hits    atomic.Int64
	copies  sync.Map // Weft-Copy values seen
	handler atomic.Pointer[http.HandlerFunc]
	stop    chan struct{}
}

func startBackend(t testing.TB, name string) *backend {
	b := &backend{name: name, stop: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.copies.Store(r.Header.Get(HeaderCopy), true)
		if h := b.handler.Load(); h != nil {
			(*h)(w, r)
			return
		}
		io.WriteString(w, b.name)
	}))
	b.addr = srv.Listener.Addr().String()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(b.stop) })
	return b
}

// handle replaces the handler; nil restores the default one.
func (b *backend) handle(h http.HandlerFunc) {
	if h == nil {
		b.handler.Store(nil)
		return
	}
	b.handler.Store(&h)
}

// client is an HTTP client of the test, its idle connections closed when
// the test ends.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get fetches url and returns the status and body.
func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// rejectCode is the code of a *link.RejectError, or -1.
func rejectCode(err error) int {
	var rej *link.RejectError
	if errors.As(err, &rej) {
		return int(rej.Code)
	}
	return -1
}

func tcpConnector(name, address, target string) resource.Connector {
	c := resource.Connector{Spec: resource.ConnectorSpec{Address: address, Target: target}}
	c.Name = name
	return c
}

func httpConnector(name, address, target string) resource.Connector {
	c := tcpConnector(name, address, target)
	c.Spec.Protocol = resource.ProtocolHTTP
	return c
}

func tcpListener(address string) resource.Listener {
	l := resource.Listener{Spec: resource.ListenerSpec{Address: address}}
	l.Name = address
	return l
}

func httpListener(address, hedge string) resource.Listener {
	l := tcpListener(address)
	l.Spec.Protocol, l.Spec.Hedge = resource.ProtocolHTTP, hedge
	return l
}
