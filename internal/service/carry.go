package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/observe"
	"weft.dev/weft/internal/observe/tracing"
	"weft.dev/weft/internal/routing"
)

// carry takes one accepted client connection to a connector for a: the
// candidates in the balancer's order, the next one whenever a target refuses or a
// path breaks while connecting. With no candidate left the client is closed at
// once rather than left hanging.
//
// A candidate whose first link looks stalled while it connects (the peer
// answers neither the stream's OPEN nor the probe it set off:
// link.OnStall) is not waited out: the next candidate is tried meanwhile,
// and the first to connect takes the connection. The stalled attempt goes
// on until then, so a peer that was only slow loses nothing but the race;
// the link's own verdict, which fails the attempt, comes much later on a
// loaded machine, whose round trips vary.
func (m *Manager) carry(client net.Conn, a *address) {
	met := m.cfg.Metrics
	tm := a.metrics(met)
	tm.opened.Inc()
	if !m.life.hold(client) {
		return
	}
	defer m.life.release(client)
	ctx := observe.WithLogAttrs(m.life.ctx, slog.String("address", a.name), slog.String("stream", client.RemoteAddr().String()))
	ctx, span := m.cfg.Tracer.Start(ctx, "weft.ingress", trace.SpanKindServer,
		tracing.KeyAddress.String(a.name), tracing.KeyKind.String("tcp"))
	defer span.End()
	n := len(m.fresh(a).tcp.list)
	if n == 0 {
		tracing.Fail(span, errNoCandidate)
		met.StreamsFailed.WithLabelValues(a.name, "no-connector").Inc()
		// Said here, as for all candidates failing below: a client cut off
		// with no word in the log looks like a broken network.
		m.cfg.Logger.WarnContext(ctx, "no connector for the address is reachable; connection closed")
		client.Close()
		return
	}
	r := &connectRace{m: m, a: a, ctx: ctx, tried: map[balance.Key]bool{},
		results: make(chan *connectAttempt),
		// One notice per attempt at most; a notice dropped for a
		// candidate that appeared meanwhile costs only its hedge.
		stalls: make(chan *connectAttempt, n)}
	w := r.run()
	if w == nil {
		tracing.Fail(span, r.lastErr)
		met.StreamsFailed.WithLabelValues(a.name, "all-candidates-failed").Inc()
		m.cfg.Logger.WarnContext(ctx, "no connector could take the connection", "tried", len(r.tried), "err", r.lastErr)
		client.Close()
		return
	}
	// The connect time is the latency sample; the connection's lifetime
	// says nothing about the candidate's health.
	a.connected(m.cfg.Clock.Now(), w.k, w.took)
	tm.active.Inc()
	out, in := m.join(client, w.far)
	w.release()
	tm.active.Dec()
	tm.out.Add(float64(out))
	tm.in.Add(float64(in))
	a.connectionDone(m.cfg.Clock.Now(), w.k, 0, balance.Cancelled)
	if span.IsRecording() {
		span.SetAttributes(tracing.KeyCandidate.String(w.c.SiteName), attribute.Int64("weft.bytes.out", out), attribute.Int64("weft.bytes.in", in))
	}
}

// withStallNotice is link.OnStall; tests replace it to stall an attempt
// on cue.
var withStallNotice = link.OnStall

// connectRace connects one client connection of carry: to one candidate at
// a time, plus one more for each that stalls.
type connectRace struct {
	m       *Manager
	a       *address
	ctx     context.Context
	tried   map[balance.Key]bool
	results chan *connectAttempt // every attempt ends here
	stalls  chan *connectAttempt // attempts whose link looks stalled
	running []*connectAttempt
	lastErr error
}

// connectAttempt is one candidate a connection is being connected to.
type connectAttempt struct {
	c       routing.Candidate
	k       balance.Key
	cancel  context.CancelFunc
	far     net.Conn
	release func()
	err     error
	took    time.Duration
	ended   bool // its result was taken
	hedged  bool // its stall started another attempt
}

// run returns the attempt that connected first, the others cancelled, or
// nil when every candidate failed (lastErr says why).
func (r *connectRace) run() *connectAttempt {
	r.launch("best")
	for out := len(r.running); out > 0; {
		select {
		case at := <-r.results:
			out--
			at.ended = true
			if at.err == nil {
				r.abandon(out, at)
				return at
			}
			r.failed(at)
			if out == 0 && r.launch("retry") {
				out++
			}
		case at := <-r.stalls:
			if at.ended || at.hedged {
				continue
			}
			at.hedged = true
			// Logged only with another to try: the connection then races
			// past the stalled candidate, which the failover benchmark
			// counts as waiting on it.
			if r.launch("hedge") {
				r.m.cfg.Logger.DebugContext(r.ctx, "candidate stalled; trying another meanwhile", "candidate", at.c.SiteName)
				out++
			}
		}
	}
	return nil
}

// launch starts an attempt on the best candidate not tried yet; false if
// there is none.
func (r *connectRace) launch(reason string) bool {
	m, a := r.m, r.a
	c, k, skips, ok := a.pickConnection(m.cfg.Clock.Now(), r.tried, m.cfg.Net, m.cfg.Tracer.On())
	if !ok {
		markSkipped(r.ctx, skips)
		return false
	}
	m.countOverflow(a, a.view.Load().tcp, c, balance.Policy{})
	actx, aspan := m.startAttempt(r.ctx, a.name, c, "", reason, skips)
	actx, cancel := context.WithCancel(actx)
	at := &connectAttempt{c: c, k: k, cancel: cancel}
	actx = withStallNotice(actx, func() {
		select {
		case r.stalls <- at:
		default:
		}
	})
	r.running = append(r.running, at)
	start := m.cfg.Clock.Now()
	// On a pooled worker: connecting grows a new goroutine's stack (see
	// package workers), and this is once per client connection.
	m.life.workers.Go(func() {
		at.far, at.release, at.err = m.connect(actx, c, a)
		at.took = m.cfg.Clock.Since(start)
		tracing.Fail(aspan, at.err)
		aspan.End()
		r.results <- at
	})
	return true
}

// failed accounts for an attempt that failed to connect.
func (r *connectRace) failed(at *connectAttempt) {
	// A saturated connector site is full, not failing: no sample and no
	// strike towards ejection.
	o, lat := balance.ConnectFailure, at.took
	var rej *link.RejectError
	if errors.Is(at.err, errSaturated) || errors.As(at.err, &rej) && rej.Code == forward.RejectSaturated {
		o, lat = balance.Cancelled, 0
	}
	r.a.connectionDone(r.m.cfg.Clock.Now(), at.k, lat, o)
	r.m.cfg.Logger.DebugContext(r.ctx, "candidate failed", "candidate", at.c.SiteName, "err", at.err)
	r.lastErr = at.err
	at.cancel()
}

// abandon cancels the attempts other than won, out of them still running,
// and ends them as they return: a loser that connected all the same is
// closed. A loser counts as cancelled, not failed: it may only have been
// slower.
func (r *connectRace) abandon(out int, won *connectAttempt) {
	won.cancel()
	for _, at := range r.running {
		if !at.ended {
			at.cancel()
		}
	}
	if out == 0 {
		return
	}
	drain := func() {
		for range out {
			at := <-r.results
			if at.err == nil {
				at.far.Close()
				at.release()
			}
			r.a.connectionDone(r.m.cfg.Clock.Now(), at.k, 0, balance.Cancelled)
		}
	}
	if !r.m.life.goroutine(drain) {
		drain() // the manager is closing: the losers are ending
	}
}

// join joins a and b as forward.Join does, and closes both if the manager
// closes meanwhile.
func (m *Manager) join(a, b net.Conn) (aToB, bToA int64) {
	if !m.life.hold(a) {
		b.Close()
		return 0, 0
	}
	defer m.life.release(a)
	if !m.life.hold(b) {
		a.Close()
		return 0, 0
	}
	defer m.life.release(b)
	return forward.Join(a, b)
}

// connect reaches candidate c: the local target when c is this site, else a
// stream along c's path. ctx carries the attempt's span, not a deadline.
// release, once the connection is closed, gives back a local connector's
// slot.
func (m *Manager) connect(ctx context.Context, c routing.Candidate, a *address) (conn net.Conn, release func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ConnectTimeout)
	defer cancel()
	if c.Site == m.cfg.Self {
		conn, release, _, err := m.dialLocal(ctx, a)
		return conn, release, err
	}
	conn, err = m.cfg.Net.OpenStream(ctx, forward.NewHeader(forward.KindTCP, a.name, m.cfg.Self, c.Path))
	return conn, func() {}, err
}

var (
	// errSaturated says every local connector of an address is at its limit.
	errSaturated = errors.New("every connector is at its connection limit")
	// errNoLocalConnector says this site has no connector for the address.
	errNoLocalConnector = errors.New("no connector here")
)

// dialLocal connects to the target of the least loaded local connector of a
// that is under its connection limit; release gives the slot back once the
// connection is closed. The connection is the *net.TCPConn itself, not a
// wrapper, so that a sealed stream's WriteTo reaches it with writev
// (net.Buffers) rather than one write per record. On failure the code says
// why, for a stream's Reject.
func (m *Manager) dialLocal(ctx context.Context, a *address) (conn net.Conn, release func(), code uint16, err error) {
	lc, code, err := a.reserveConnector()
	if err != nil {
		return nil, nil, code, fmt.Errorf("%q: %w", a.name, err)
	}
	var d net.Dialer
	conn, err = d.DialContext(ctx, "tcp", lc.spec.Target)
	if err != nil {
		a.releaseConnector(lc.c)
		return nil, nil, forward.RejectRefused, fmt.Errorf("target %s: %w", lc.spec.Target, err)
	}
	return conn, func() { a.releaseConnector(lc.c) }, 0, nil
}

// ServeStream delivers a stream whose last segment is this site to a local
// connector: it confirms the stream once the target answered, or rejects it with
// the reason so that the ingress can try another candidate.
func (m *Manager) ServeStream(st Stream, h *forward.Header) {
	a := m.lookup(h.Address)
	if a == nil {
		st.Reject(forward.RejectNoConnector, fmt.Sprintf("%q: %v", h.Address, errNoLocalConnector))
		return
	}
	ctx, span := m.startHop(m.hopContext(h), "weft.egress", trace.SpanKindServer, func() []attribute.KeyValue {
		return []attribute.KeyValue{tracing.KeyAddress.String(h.Address), tracing.KeyKind.String("tcp")}
	})
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ConnectTimeout)
	_, tspan := m.startHop(ctx, "weft.target", trace.SpanKindClient, func() []attribute.KeyValue {
		return []attribute.KeyValue{tracing.KeyAddress.String(h.Address)}
	})
	conn, release, code, err := m.dialLocal(ctx, a)
	cancel()
	tracing.Fail(tspan, err)
	tspan.End()
	if err != nil {
		tracing.Fail(span, err)
		st.Reject(code, err.Error())
		return
	}
	defer release()
	if err := st.Confirm(); err != nil {
		conn.Close()
		st.Close()
		return
	}
	m.join(st, conn)
}
