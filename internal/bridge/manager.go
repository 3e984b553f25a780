package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/resource"
)

// ErrInvalid is wrapped by the errors of a Bridge that cannot run as
// given; the admin API answers 400.
var ErrInvalid = errors.New("invalid bridge")

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Site is the site's name, for client IDs and durable consumer names.
	Site string
	// Mesh is the site's broker, and Store its store, where Bridges are
	// kept with the other event configuration.
	Mesh     *broker.Broker
	Store    *store.Store
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

// Manager runs a site's bridges.
type Manager struct {
	cfg   ManagerConfig
	mesh  *broker.Broker
	st    *store.Store
	log   *slog.Logger
	met   metrics
	dedup *dedupWindow

	// putMu serialises Put and Delete, which stop a runner and start
	// another without mu held across the wait.
	putMu sync.Mutex
	// mu guards runners and ctx.
	mu      sync.Mutex
	runners map[string]*runner
	ctx     context.Context
}

type metrics struct {
	messages  *prometheus.CounterVec
	malformed *prometheus.CounterVec
	failures  *prometheus.CounterVec
}

// dedupEvents is how many events taken in the dedup window remembers.
const dedupEvents = 1 << 16

// NewManager restores the stored bridges and opens their taps, so that the
// site's first record announces their interests; Run starts them.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{cfg: cfg, mesh: cfg.Mesh, st: cfg.Store, log: cfg.Logger, runners: map[string]*runner{}, dedup: newDedupWindow(dedupEvents),
		met: metrics{
			messages:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_bridge_messages_total", Help: "Events taken into weft (in) and sent to the broker (out), by bridge."}, []string{"bridge", "direction"}),
			malformed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_bridge_malformed_total", Help: "Broker messages skipped as not convertible to CloudEvents, by bridge."}, []string{"bridge"}),
			failures:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_bridge_connection_failures_total", Help: "Broker connections that failed or could not be made, by bridge."}, []string{"bridge"}),
		}}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(m.met.messages, m.met.malformed, m.met.failures)
	}
	var stored []resource.Bridge
	err := m.st.Config(func(key string, v []byte) error {
		if strings.HasPrefix(key, resource.KindBridge+"/") {
			var b resource.Bridge
			if json.Unmarshal(v, &b) == nil {
				stored = append(stored, b)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, b := range stored {
		r, err := m.newRunner(b)
		if err != nil {
			// It was valid when it was put: what changed is this weft
			// (a module gone) or the site's limits.
			m.log.Error("bridge: cannot restore; fix or delete it", "bridge", b.Name, "err", err)
			continue
		}
		m.runners[b.Name] = r
	}
	return m, nil
}

// Run starts the bridges; they stop when ctx ends. Wait waits for them.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ctx = ctx
	for _, r := range m.runners {
		m.startLocked(r)
	}
}

// Wait waits for every bridge to stop after Run's context ended.
func (m *Manager) Wait() {
	m.mu.Lock()
	rs := make([]*runner, 0, len(m.runners))
	for _, r := range m.runners {
		rs = append(rs, r)
	}
	m.mu.Unlock()
	for _, r := range rs {
		r.stop()
	}
}

// tapName is the cursor name of a bridge's Out: it changes when the Out
// does, so that an edited Out starts afresh rather than resume another's
// position.
func tapName(bridge string, out resource.BridgeOut) string {
	return bridge + "/" + out.Topic + "/" + url.PathEscape(out.To)
}

// newRunner checks b and opens its taps.
func (m *Manager) newRunner(b resource.Bridge) (*runner, error) {
	u, err := url.Parse(b.Spec.Broker)
	if err != nil {
		return nil, fmt.Errorf("%w: spec.broker: %v", ErrInvalid, err)
	}
	mod, err := lookup(resource.BridgeScheme(b.Spec.Broker))
	if err != nil {
		return nil, fmt.Errorf("%w: spec.broker: %v", ErrInvalid, err)
	}
	for i, in := range b.Spec.In {
		if err := events.ValidateSubject(in.Topic + in.Queue); err != nil {
			return nil, fmt.Errorf("%w: spec.in[%d]: %v", ErrInvalid, i, err)
		}
	}
	if err := checkLoops(b); err != nil {
		return nil, err
	}
	cfg := Config{Bridge: b.Name, Site: m.cfg.Site, URL: u}
	for _, in := range b.Spec.In {
		cfg.From = append(cfg.From, in.From)
	}
	if err := loadSecret(b.Spec.Auth.SecretFile, &Config{URL: u}); err != nil {
		return nil, err
	}
	r := &runner{m: m, b: b, mod: mod, cfg: cfg, plain: plainSource(u),
		log: m.log.With("bridge", b.Name), st: resource.BridgeStatus{State: resource.BridgeConnecting}}
	for i, out := range b.Spec.Out {
		var t *broker.Tap
		if out.Queue != "" {
			t, err = m.mesh.OpenQueueTap(out.Queue)
		} else {
			t, err = m.mesh.OpenTap(tapName(b.Name, out), out.Topic)
		}
		if err != nil {
			r.closeTaps()
			return nil, fmt.Errorf("spec.out[%d]: %w", i, err)
		}
		r.taps = append(r.taps, t)
	}
	return r, nil
}

func (r *runner) closeTaps() {
	for _, t := range r.taps {
		t.Close()
	}
}

func (m *Manager) startLocked(r *runner) {
	if m.ctx == nil {
		return
	}
	// The bridge's series exist from its start, so that a rate or an
	// alert on increase() sees its first message and its first failure.
	m.met.messages.WithLabelValues(r.b.Name, "in")
	m.met.messages.WithLabelValues(r.b.Name, "out")
	m.met.malformed.WithLabelValues(r.b.Name)
	m.met.failures.WithLabelValues(r.b.Name)
	ctx, cancel := context.WithCancel(m.ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(ctx)
}

// stop ends the runner and waits for it.
func (r *runner) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

// Put creates or replaces a bridge (b is defaulted and valid as a
// resource). A bridge that cannot run gets an error wrapping ErrInvalid;
// one whose Out patterns exceed the site's interests broker's limit
// broker.ErrTooManyInterests.
func (m *Manager) Put(b resource.Bridge) error {
	m.putMu.Lock()
	defer m.putMu.Unlock()
	b.Status = nil
	m.mu.Lock()
	old := m.runners[b.Name]
	m.mu.Unlock()
	if old != nil {
		// The old one's taps go first, so that the new ones fit under
		// the interest limit when they replace them.
		old.stop()
		old.closeTaps()
	}
	r, err := m.newRunner(b)
	if err == nil {
		err = m.st.PutConfig(resource.KindBridge+"/"+b.Name, b)
		if err != nil {
			r.closeTaps()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if old != nil {
			// Put back what ran: its taps again, then the runner.
			if back, err2 := m.newRunner(old.b); err2 == nil {
				m.runners[b.Name] = back
				m.startLocked(back)
			}
		}
		return err
	}
	if old != nil {
		m.forgetCursors(old.b, b)
	}
	m.runners[b.Name] = r
	m.startLocked(r)
	return nil
}

// forgetCursors deletes the cursors of old's Outs that now is without.
func (m *Manager) forgetCursors(old, now resource.Bridge) {
	for _, o := range old.Spec.Out {
		// A queue's position is the queue's, not the bridge's.
		if o.Topic != "" && !slices.Contains(now.Spec.Out, o) {
			m.mesh.DeleteTapCursor(tapName(old.Name, o))
		}
	}
}

// Delete stops and removes a bridge; it reports whether it existed.
func (m *Manager) Delete(name string) (bool, error) {
	m.putMu.Lock()
	defer m.putMu.Unlock()
	found, err := m.st.DeleteConfig(resource.KindBridge + "/" + name)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	r := m.runners[name]
	delete(m.runners, name)
	m.mu.Unlock()
	if r != nil {
		r.stop()
		r.closeTaps()
		m.forgetCursors(r.b, resource.Bridge{})
	}
	return found || r != nil, nil
}

// List returns the bridges with their status, sorted by name.
func (m *Manager) List() []resource.Bridge {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]resource.Bridge, 0, len(m.runners))
	for _, r := range m.runners {
		b := r.b
		st := r.status()
		b.Status = &st
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b resource.Bridge) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Get returns the bridge name as stored (without status), if there is one.
func (m *Manager) Get(name string) (resource.Bridge, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.runners[name]
	if !ok {
		return resource.Bridge{}, false
	}
	return r.b, true
}

// checkLoops refuses a bridge that would send what it takes in back to the
// broker subject it came from, and take it in again, without end: an In
// whose weft topic or queue an Out of the same kind covers, with the Out's
// destination the In's source.
func checkLoops(b resource.Bridge) error {
	for i, in := range b.Spec.In {
		for j, out := range b.Spec.Out {
			if in.From != out.To {
				continue
			}
			if (in.Topic != "" && out.Topic != "" && events.Match(out.Topic, in.Topic)) ||
				(in.Queue != "" && out.Queue != "" && events.Match(out.Queue, in.Queue)) {
				return fmt.Errorf("%w: spec.out[%d] sends spec.in[%d]'s events back to %q, a loop: narrow the out pattern or use another broker destination", ErrInvalid, j, i, in.From)
			}
		}
	}
	return nil
}
