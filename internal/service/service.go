package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/observe"
	"weft.dev/weft/internal/observe/tracing"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// Network is the part of a site that services use.
type Network interface {
	// Table is the current route table. It is called on the request path
	// and under the Manager's lock, so it must be cheap and take no lock
	// the caller of TableChanged holds.
	Table() *routing.Table
	// OpenStream opens a stream along h.Segments, through the link to
	// h.Segments[h.Next], and returns once the far end confirmed or refused
	// it (a *link.RejectError). A site seals it end to end (internal/seal).
	OpenStream(ctx context.Context, h *forward.Header) (net.Conn, error)
}

// Config configures a Manager.
type Config struct {
	Self    siteid.ID
	Net     Network
	Metrics *observe.Metrics
	Logger  *slog.Logger
	// ConnectTimeout bounds one attempt to reach a candidate, so that a dead path
	// costs at most this before the next candidate is tried.
	ConnectTimeout time.Duration
	// Clock is where the manager reads time for its decisions: hedge
	// delays, the latencies it feeds the balancer, ejections. Nil means
	// the real clock; tests use k8s.io/utils/clock/testing's fake.
	Clock clock.WithTicker
	// Rand seeds the balancer's choices; nil means a random seed.
	Rand *rand.Rand
	// Tracer starts the spans of the requests and connections carried;
	// nil records none.
	Tracer *tracing.Tracer
}

// Manager runs a site's listeners and connectors.
type Manager struct {
	cfg  Config
	life *lifecycle

	mu         sync.Mutex // guards the fields below; taken before address.mu; never held across I/O
	listeners  map[string]*listener
	connectors map[string]*connector // by name
	addrs      map[string]*address   // every address with a listener or connector here, ever
	streams    *streamServer         // serves KindHTTP streams; nil until the first

	frameWorkers atomic.Int64 // framed streams' workers started (for tests)
}

type listener struct {
	spec resource.Listener
	addr *address
	ln   net.Listener
	lean bool // an HTTP listener's connections go to the lean server first (h1server.go)
	h1   atomic.Pointer[h1Server]
	done chan struct{} // closed when it stopped accepting
}

// connector is one of this site's connectors. Its address is fixed: a
// connector moved to another address is a new object.
type connector struct {
	spec      resource.Connector // guarded by Manager.mu
	addr      *address
	open      uint32           // connections to the target now; guarded by addr.mu
	transport *targetTransport // pooled connections to the target (http); guarded by Manager.mu
}

// NewManager returns a Manager with no listeners or connectors.
func NewManager(cfg Config) *Manager {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 2 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = observe.NewMetrics()
	}
	return &Manager{
		cfg:        cfg,
		life:       newLifecycle(),
		listeners:  map[string]*listener{},
		connectors: map[string]*connector{},
		addrs:      map[string]*address{},
	}
}

// Errors of the Manager.
var (
	// ErrListenerExists is returned when a listener's name is taken with another spec.
	ErrListenerExists = errors.New("listener exists")
	// ErrClosed is returned for a listener set after Close.
	ErrClosed = errors.New("service manager closed")
)

// SetListener starts a listener, or restarts it if its spec changed. It returns
// the address it listens on.
func (m *Manager) SetListener(l resource.Listener) (net.Addr, error) {
	m.mu.Lock()
	old := m.listeners[l.Name]
	m.mu.Unlock()
	if old != nil {
		if reflect.DeepEqual(old.spec.Spec, l.Spec) {
			return old.ln.Addr(), nil
		}
		m.DeleteListener(l.Name)
	}
	tc, err := listenerTLS(l.Spec)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(l.Spec.Host, fmt.Sprint(l.Spec.Port)))
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	m.mu.Lock()
	nl := &listener{spec: l, addr: m.addressLocked(l.Spec.Address), ln: ln, lean: leanHTTP1 && tc == nil, done: make(chan struct{})}
	m.listeners[l.Name] = nl
	m.mu.Unlock()
	serve := m.serve
	if l.Spec.Protocol == resource.ProtocolHTTP {
		serve = m.serveHTTP
	}
	if !m.life.goroutine(func() { serve(nl) }) {
		m.mu.Lock()
		delete(m.listeners, l.Name)
		m.mu.Unlock()
		ln.Close()
		return nil, fmt.Errorf("listener %s: %w", l.Name, ErrClosed)
	}
	return ln.Addr(), nil
}

// DeleteListener stops a listener; connections it already carries go on.
func (m *Manager) DeleteListener(name string) bool {
	m.mu.Lock()
	l := m.listeners[name]
	delete(m.listeners, name)
	m.mu.Unlock()
	if l == nil {
		return false
	}
	l.ln.Close()
	<-l.done
	return true
}

// ListenerAddr is where a listener accepts connections.
func (m *Manager) ListenerAddr(name string) (net.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.listeners[name]
	if !ok {
		return nil, false
	}
	return l.ln.Addr(), true
}

// SetConnector adds or replaces a connector.
func (m *Manager) SetConnector(c resource.Connector) {
	var fresh *targetTransport
	if c.Spec.Protocol == resource.ProtocolHTTP {
		// Before the lock: it reads the target's CA file. Unused (and
		// never connected) when the connector keeps its transport.
		fresh = m.newTargetTransport(c.Spec)
	}
	m.mu.Lock()
	var stale []idleCloser
	cur := m.connectors[c.Name]
	if cur != nil && cur.spec.Spec.Address != c.Spec.Address {
		// Moved: its connections counted against another address.
		stale = append(stale, m.removeConnectorLocked(cur)...)
		cur = nil
	}
	if cur == nil {
		cur = &connector{addr: m.addressLocked(c.Spec.Address)}
		m.connectors[c.Name] = cur
	}
	// Otherwise the same object, so that the connections it carries still
	// count against its limit.
	prev := cur.spec.Spec
	cur.spec = c
	if t := cur.transport; t != nil && (c.Spec.Protocol != resource.ProtocolHTTP || !sameTarget(prev, c.Spec)) {
		stale = append(stale, t.transports()...)
		cur.transport = nil
	}
	if cur.transport == nil {
		cur.transport = fresh
	}
	stale = append(stale, m.refreshLocked(cur.addr, m.localConnectorsLocked(cur.addr))...)
	m.mu.Unlock()
	closeTransports(stale)
}

// DeleteConnector removes a connector; connections it already carries go on.
func (m *Manager) DeleteConnector(name string) bool {
	m.mu.Lock()
	c := m.connectors[name]
	var stale []idleCloser
	if c != nil {
		stale = m.removeConnectorLocked(c)
	}
	m.mu.Unlock()
	closeTransports(stale)
	return c != nil
}

// removeConnectorLocked drops c and returns the transports no longer used.
func (m *Manager) removeConnectorLocked(c *connector) []idleCloser {
	delete(m.connectors, c.spec.Name)
	stale := m.refreshLocked(c.addr, m.localConnectorsLocked(c.addr))
	return append(stale, c.transport.transports()...)
}

// localConnectorsLocked returns the connectors of a, by name, as a view
// holds them.
func (m *Manager) localConnectorsLocked(a *address) []localConnector {
	var local []localConnector
	for _, c := range m.connectors {
		if c.addr == a {
			local = append(local, localConnector{c: c, name: c.spec.Name, spec: c.spec.Spec, transport: c.transport})
		}
	}
	// Map order would make the seeded choices differ between runs.
	slices.SortFunc(local, func(x, y localConnector) int { return strings.Compare(x.name, y.name) })
	return local
}

// addressLocked returns the state of address, made on first use. Each
// gets a Rand of its own, seeded from Config.Rand, because its Pickers run
// under its own lock.
func (m *Manager) addressLocked(name string) *address {
	a := m.addrs[name]
	if a == nil {
		a = newAddress(name, rand.New(rand.NewPCG(m.cfg.Rand.Uint64(), m.cfg.Rand.Uint64())))
		m.addrs[name] = a
		m.refreshLocked(a, nil)
	}
	return a
}

// lookup returns the state of address, nil if nothing here serves or
// listens for it.
func (m *Manager) lookup(name string) *address {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addrs[name]
}

// refreshLocked rebuilds a's view from the current table and local, its
// connectors, and returns the transports of paths no longer reached.
// Reading the table under mu keeps views from going back to an older table
// when two goroutines refresh at once.
func (m *Manager) refreshLocked(a *address, local []localConnector) []idleCloser {
	return a.adopt(newAddressView(m.cfg.Self, a.name, m.cfg.Net.Table(), local))
}

// fresh returns a's view, rebuilt first if the table changed since.
func (m *Manager) fresh(a *address) *addressView {
	v := a.view.Load()
	if v.table == m.cfg.Net.Table() {
		return v
	}
	m.mu.Lock()
	var stale []idleCloser
	if v = a.view.Load(); v.table != m.cfg.Net.Table() {
		stale = m.refreshLocked(a, v.local)
	}
	v = a.view.Load()
	m.mu.Unlock()
	closeTransports(stale)
	return v
}

// TableChanged tells the manager that Network.Table returns a new table.
// The site calls it after each one. Every address's candidates are rebuilt
// from it, and the sites it no longer has are forgotten: their balancing
// state (so they stop counting towards the ejection cap) and their pooled
// HTTP streams, whose idle ones are closed.
func (m *Manager) TableChanged() {
	m.mu.Lock()
	var stale []idleCloser
	t := m.cfg.Net.Table()
	for _, a := range m.addrs {
		if v := a.view.Load(); v.table != t {
			stale = append(stale, m.refreshLocked(a, v.local)...)
		}
	}
	m.mu.Unlock()
	closeTransports(stale)
}

// Advertised is what this site serves, for its site record.
func (m *Manager) Advertised() []routing.Connector {
	m.mu.Lock()
	specs := make([]resource.Connector, 0, len(m.connectors))
	for _, c := range m.connectors {
		specs = append(specs, c.spec)
	}
	m.mu.Unlock()
	return Advertise(specs)
}

// Advertise is how connectors appear in a site record: one entry per
// address, sorted, with the capacities of its connectors added up.
func Advertise(connectors []resource.Connector) []routing.Connector {
	byAddr := map[string]*routing.Connector{}
	for _, c := range connectors {
		a := byAddr[c.Spec.Address]
		if a == nil {
			a = &routing.Connector{Address: c.Spec.Address, Protocol: c.Spec.Protocol}
			byAddr[a.Address] = a
		}
		a.Capacity += c.Spec.Capacity
	}
	out := make([]routing.Connector, 0, len(byAddr))
	for _, a := range byAddr {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// Close stops every listener and the serving of HTTP streams, ends every
// connection and request the manager carries, and returns once every
// goroutine it started has ended. It may be called more than once.
func (m *Manager) Close() {
	m.mu.Lock()
	var ls []*listener
	for _, l := range m.listeners {
		ls = append(ls, l)
	}
	clear(m.listeners)
	streams := m.streams
	m.mu.Unlock()
	for _, l := range ls {
		l.ln.Close()
		<-l.done
	}
	if streams != nil {
		streams.srv.Close()
	}
	m.life.close()
	// Last, so that no request returns a connection to a pool afterwards.
	m.mu.Lock()
	var ts []idleCloser
	for _, c := range m.connectors {
		ts = append(ts, c.transport.transports()...)
	}
	for _, a := range m.addrs {
		ts = append(ts, a.allRemotes()...)
	}
	m.mu.Unlock()
	closeTransports(ts)
}

func (m *Manager) serve(l *listener) {
	defer close(l.done)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.cfg.Logger.Error("listener stopped", "listener", l.spec.Name, "err", err)
			}
			return
		}
		if !m.life.goroutine(func() { m.carry(c, l.addr) }) {
			c.Close()
		}
	}
}
