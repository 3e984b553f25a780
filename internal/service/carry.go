package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

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
	if len(m.fresh(a).tcp.list) == 0 {
		tracing.Fail(span, errNoCandidate)
		met.StreamsFailed.WithLabelValues(a.name, "no-connector").Inc()
		// Said here, as for all candidates failing below: a client cut off
		// with no word in the log looks like a broken network.
		m.cfg.Logger.WarnContext(ctx, "no connector for the address is reachable; connection closed")
		client.Close()
		return
	}
	tried := map[balance.Key]bool{}
	var lastErr error
	for n := 1; ; n++ {
		c, k, skips, ok := a.pickConnection(m.cfg.Clock.Now(), tried, m.cfg.Net, m.cfg.Tracer.On())
		if !ok {
			markSkipped(ctx, skips)
			break
		}
		m.countOverflow(a, a.view.Load().tcp, c, balance.Policy{})
		reason := "best"
		if n > 1 {
			reason = "retry"
		}
		actx, aspan := m.startAttempt(ctx, a.name, c, "", reason, skips)
		start := m.cfg.Clock.Now()
		far, release, err := m.connect(actx, c, a)
		took := m.cfg.Clock.Since(start)
		tracing.Fail(aspan, err)
		aspan.End()
		if err != nil {
			// A saturated connector site is full, not failing: no sample
			// and no strike towards ejection.
			o, lat := balance.ConnectFailure, took
			var rej *link.RejectError
			if errors.Is(err, errSaturated) || errors.As(err, &rej) && rej.Code == forward.RejectSaturated {
				o, lat = balance.Cancelled, 0
			}
			a.connectionDone(m.cfg.Clock.Now(), k, lat, o)
			m.cfg.Logger.DebugContext(ctx, "candidate failed", "candidate", c.SiteName, "err", err)
			lastErr = err
			continue
		}
		// The connect time is the latency sample; the connection's lifetime
		// says nothing about the candidate's health.
		a.connected(m.cfg.Clock.Now(), k, took)
		tm.active.Inc()
		out, in := m.join(client, far)
		release()
		tm.active.Dec()
		tm.out.Add(float64(out))
		tm.in.Add(float64(in))
		a.connectionDone(m.cfg.Clock.Now(), k, 0, balance.Cancelled)
		if span.IsRecording() {
			span.SetAttributes(tracing.KeyCandidate.String(c.SiteName), attribute.Int64("weft.bytes.out", out), attribute.Int64("weft.bytes.in", in))
		}
		return
	}
	tracing.Fail(span, lastErr)
	met.StreamsFailed.WithLabelValues(a.name, "all-candidates-failed").Inc()
	m.cfg.Logger.WarnContext(ctx, "no connector could take the connection", "tried", len(tried), "err", lastErr)
	client.Close()
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
