package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/routing"
)

// carry takes one accepted client connection to a connector for address: the
// candidates in the balancer's order, the next one whenever a target refuses or a
// path breaks while connecting. With no candidate left the client is closed at
// once rather than left hanging.
func (m *Manager) carry(client net.Conn, address string) {
	met := m.cfg.Metrics
	met.StreamsOpened.WithLabelValues(address).Inc()
	cands := m.cfg.Net.Table().Candidates(address)
	if len(cands) == 0 {
		met.StreamsFailed.WithLabelValues(address, "no-connector").Inc()
		client.Close()
		return
	}
	bcands, byKey := m.tcpCandidates(cands, address)
	tried := map[balance.Key]bool{}
	var lastErr error
	for {
		// Pick and Start under one lock, so that concurrent connections see
		// each other's load.
		m.mu.Lock()
		p := m.pickerLocked(address)
		k, ok := p.Pick(m.cfg.Clock.Now(), bcands, func(k balance.Key) bool { return tried[k] })
		if ok {
			p.Start(k, balance.Connection)
		}
		m.mu.Unlock()
		if !ok {
			break
		}
		tried[k] = true
		c := byKey[k]
		start := m.cfg.Clock.Now()
		far, err := m.connect(c, address)
		took := m.cfg.Clock.Since(start)
		if err != nil {
			// A saturated connector site is full, not failing: no sample
			// and no strike towards ejection.
			o, lat := balance.ConnectFailure, took
			var rej *link.RejectError
			if errors.Is(err, errSaturated) || errors.As(err, &rej) && rej.Code == forward.RejectSaturated {
				o, lat = balance.Cancelled, 0
			}
			m.mu.Lock()
			p.Done(m.cfg.Clock.Now(), k, balance.Connection, lat, o)
			m.mu.Unlock()
			m.cfg.Logger.Debug("candidate failed", "address", address, "site", c.SiteName, "err", err)
			lastErr = err
			continue
		}
		// The connect time is the latency sample; the connection's lifetime
		// says nothing about the candidate's health.
		m.mu.Lock()
		p.Observe(m.cfg.Clock.Now(), k, took, balance.Success)
		m.mu.Unlock()
		met.StreamsActive.WithLabelValues(address).Inc()
		out, in := forward.Join(client, far)
		met.StreamsActive.WithLabelValues(address).Dec()
		met.AddressBytes.WithLabelValues(address, "out").Add(float64(out))
		met.AddressBytes.WithLabelValues(address, "in").Add(float64(in))
		m.mu.Lock()
		p.Done(m.cfg.Clock.Now(), k, balance.Connection, 0, balance.Cancelled)
		m.mu.Unlock()
		return
	}
	met.StreamsFailed.WithLabelValues(address, "all-candidates-failed").Inc()
	m.cfg.Logger.Warn("no connector could take the connection", "address", address, "tried", len(tried), "err", lastErr)
	client.Close()
}

// tcpCandidates are cands for the balancer. This site's own candidate
// carries its connectors' connection limit, so that the Picker sees it
// saturated and overflows without trying it.
func (m *Manager) tcpCandidates(cands []routing.Candidate, address string) ([]balance.Candidate, map[balance.Key]routing.Candidate) {
	m.mu.Lock()
	local := balance.Limits{MaxConnections: m.localLimitsLocked(address, "").MaxConnections}
	m.mu.Unlock()
	bcands := make([]balance.Candidate, len(cands))
	byKey := make(map[balance.Key]routing.Candidate, len(cands))
	for i, c := range cands {
		k := balance.Key(c.Site.String())
		bcands[i] = balance.Candidate{Key: k, Cost: c.Cost, Capacity: c.Capacity}
		if c.Site == m.cfg.Self {
			bcands[i].Limits = local
		}
		byKey[k] = c
	}
	return bcands, byKey
}

// pickerLocked returns the balancer of an address, made on first use.
func (m *Manager) pickerLocked(address string) *balance.Picker {
	p := m.pickers[address]
	if p == nil {
		p = balance.NewPicker(balance.DefaultConfig(), m.cfg.Rand)
		m.pickers[address] = p
	}
	return p
}

// connect reaches candidate c: the local target when c is this site, else a
// stream along c's path.
func (m *Manager) connect(c routing.Candidate, address string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ConnectTimeout)
	defer cancel()
	if c.Site == m.cfg.Self {
		conn, _, err := m.dialLocal(ctx, address)
		return conn, err
	}
	return m.cfg.Net.OpenStream(ctx, forward.NewHeader(forward.KindTCP, address, m.cfg.Self, c.Path))
}

// errSaturated says every local connector of an address is at its limit.
var errSaturated = errors.New("every connector is at its connection limit")

// dialLocal connects to the target of the least loaded local connector for address
// that is under its connection limit. Closing the connection gives its slot back.
// On failure the code says why, for a stream's Reject.
func (m *Manager) dialLocal(ctx context.Context, address string) (net.Conn, uint16, error) {
	m.mu.Lock()
	var best *connector
	found := false
	for _, c := range m.connectors {
		if c.spec.Spec.Address != address {
			continue
		}
		found = true
		if max := c.spec.Spec.MaxConnections; max > 0 && c.open >= max {
			continue
		}
		// Least open connections per unit of capacity.
		if best == nil || uint64(c.open)*uint64(best.spec.Spec.Capacity) < uint64(best.open)*uint64(c.spec.Spec.Capacity) {
			best = c
		}
	}
	if best == nil {
		m.mu.Unlock()
		if !found {
			return nil, forward.RejectNoConnector, fmt.Errorf("no connector for %q here", address)
		}
		return nil, forward.RejectSaturated, errSaturated
	}
	best.open++
	target := best.spec.Spec.Target
	m.mu.Unlock()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		m.release(best)
		return nil, forward.RejectRefused, fmt.Errorf("target %s: %w", target, err)
	}
	return &releasingConn{Conn: conn, release: func() { m.release(best) }}, 0, nil
}

func (m *Manager) release(c *connector) {
	m.mu.Lock()
	c.open--
	m.mu.Unlock()
}

// ServeStream delivers a stream whose last segment is this site to a local
// connector: it confirms the stream once the target answered, or rejects it with
// the reason so that the ingress can try another candidate.
func (m *Manager) ServeStream(st *link.Stream, h *forward.Header) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ConnectTimeout)
	conn, code, err := m.dialLocal(ctx, h.Address)
	cancel()
	if err != nil {
		st.Reject(code, err.Error())
		return
	}
	if err := st.Confirm(); err != nil {
		conn.Close()
		st.Close()
		return
	}
	forward.Join(st, conn)
}

// releasingConn gives back its connector's slot when closed, once: Join may close
// it from both of its goroutines.
type releasingConn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *releasingConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// CloseWrite keeps half-close working through the wrapper.
func (c *releasingConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return c.Conn.Close()
}
