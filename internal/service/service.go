// Package service carries client connections to services: listeners accept at a
// local port and pick a connector for their address anywhere in the network (by
// path cost, capacity and load, through the balance package); connectors deliver
// streams that arrive for an address to a local target.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"sort"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/observe"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// Network is the part of a site that services use.
type Network interface {
	// Table is the current route table.
	Table() *routing.Table
	// OpenStream opens a stream along h.Segments, through the link to
	// h.Segments[h.Next], and returns once the far end confirmed or refused it.
	OpenStream(ctx context.Context, h *forward.Header) (*link.Stream, error)
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
	// Rand drives the balancer's choices; nil means a random seed.
	Rand *rand.Rand
}

// Manager runs a site's listeners and connectors.
type Manager struct {
	cfg Config

	mu         sync.Mutex // guards the fields below; never held across I/O
	listeners  map[string]*listener
	connectors map[string]*connector // by name
	pickers    map[string]*balance.Picker
	http       *httpState
}

type listener struct {
	spec resource.Listener
	ln   net.Listener
	done chan struct{}
}

type connector struct {
	spec resource.Connector
	open uint32 // connections to the target now
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
	return &Manager{
		cfg:        cfg,
		listeners:  map[string]*listener{},
		connectors: map[string]*connector{},
		pickers:    map[string]*balance.Picker{},
		http:       newHTTPState(),
	}
}

// ErrListenerExists is returned when a listener's name is taken with another spec.
var ErrListenerExists = errors.New("listener exists")

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
	ln, err := net.Listen("tcp", net.JoinHostPort(l.Spec.Host, fmt.Sprint(l.Spec.Port)))
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	nl := &listener{spec: l, ln: ln, done: make(chan struct{})}
	m.mu.Lock()
	m.listeners[l.Name] = nl
	m.mu.Unlock()
	if l.Spec.Protocol == resource.ProtocolHTTP {
		go m.serveHTTP(nl)
	} else {
		go m.serve(nl)
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
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.connectors[c.Name]; old != nil {
		old.spec = c
		return
	}
	m.connectors[c.Name] = &connector{spec: c}
}

// DeleteConnector removes a connector; connections it already carries go on.
func (m *Manager) DeleteConnector(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.connectors[name]
	delete(m.connectors, name)
	return ok
}

// Advertised is what this site serves, for its site record: one entry per address,
// with the capacities of its connectors added up.
func (m *Manager) Advertised() []routing.Connector {
	m.mu.Lock()
	defer m.mu.Unlock()
	byAddr := map[string]*routing.Connector{}
	for _, c := range m.connectors {
		a := byAddr[c.spec.Spec.Address]
		if a == nil {
			a = &routing.Connector{Address: c.spec.Spec.Address, Protocol: c.spec.Spec.Protocol}
			byAddr[a.Address] = a
		}
		a.Capacity += c.spec.Spec.Capacity
	}
	out := make([]routing.Connector, 0, len(byAddr))
	for _, a := range byAddr {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// Close stops every listener and the serving of HTTP streams.
func (m *Manager) Close() {
	m.mu.Lock()
	names := make([]string, 0, len(m.listeners))
	for n := range m.listeners {
		names = append(names, n)
	}
	m.mu.Unlock()
	for _, n := range names {
		m.DeleteListener(n)
	}
	m.closeHTTP()
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
		go m.carry(c, l.spec.Spec.Address)
	}
}
