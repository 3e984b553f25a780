package service

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"sync"
	"time"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/resource"
)

// HTTP at the connector site: KindHTTP streams are served by one
// http.Server per site whose handler sends each request to one of the
// site's connectors for the stream's address, balanced (and ejected) by a
// balance.Picker of its own, over pooled connections to the target. The
// ingress does the same in process for its own site's candidate
// (roundTripLocal), so both paths share limits and ejection.

// ServeHTTPStream serves a KindHTTP stream whose last segment is this site.
// A site with no http connector for the address refuses the stream, so the
// ingress moves on at once; saturation is answered per request instead
// (503 with Weft-Overload), because a stream carries many requests.
func (m *Manager) ServeHTTPStream(st *link.Stream, h *forward.Header) {
	m.mu.Lock()
	found := false
	for _, c := range m.connectors {
		found = found || (c.spec.Spec.Address == h.Address && c.spec.Spec.Protocol == resource.ProtocolHTTP)
	}
	var sl *streamListener
	if found {
		sl = m.streamServerLocked()
	}
	m.mu.Unlock()
	if !found {
		st.Reject(forward.RejectNoConnector, fmt.Sprintf("no http connector for %q here", h.Address))
		return
	}
	if err := st.Confirm(); err != nil {
		st.Close()
		return
	}
	if !sl.push(&addressConn{Conn: st, address: h.Address}) {
		st.Reset(forward.ResetAborted)
	}
}

type addressKey struct{}

// addressConn is a served stream with the address its header named.
type addressConn struct {
	net.Conn
	address string
}

// streamServerLocked returns the listener of the site's stream server,
// started on first use.
func (m *Manager) streamServerLocked() *streamListener {
	if m.http.streams != nil {
		return m.http.streams
	}
	sl := &streamListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	proxy := &httputil.ReverseProxy{
		// Director rather than Rewrite: Rewrite drops the X-Forwarded-*
		// headers the ingress set for the client.
		Director: func(r *http.Request) {
			r.URL.Scheme = "http"
			r.URL.Host, _ = r.Context().Value(addressKey{}).(string)
		},
		Transport: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			return m.roundTripLocal(r.URL.Host, r)
		}),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The ingress reads this header as "no byte of an answer":
			// an idempotent request may go elsewhere.
			w.Header().Set(HeaderError, "target unreachable")
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
		ErrorLog: slog.NewLogLogger(m.cfg.Logger.Handler(), slog.LevelDebug),
	}
	srv := &http.Server{
		Handler: proxy,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, addressKey{}, c.(*addressConn).address)
		},
		// Longer than the ingress's idle timeout, so that the ingress
		// closes idle streams first.
		IdleTimeout: 90 * time.Second,
		ErrorLog:    slog.NewLogLogger(m.cfg.Logger.Handler(), slog.LevelDebug),
	}
	go srv.Serve(sl)
	m.http.server, m.http.streams = srv, sl
	return sl
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTripLocal sends req to one of this site's http connectors for
// address: the Picker's choice among those neither saturated nor ejected.
// When all are saturated it answers 503 with Weft-Overload itself, without
// touching a target, so that the ingress overflows and no health is
// blamed.
func (m *Manager) roundTripLocal(address string, req *http.Request) (*http.Response, error) {
	m.mu.Lock()
	var cands []balance.Candidate
	for name, c := range m.connectors {
		s := c.spec.Spec
		if s.Address != address || s.Protocol != resource.ProtocolHTTP {
			continue
		}
		cands = append(cands, balance.Candidate{
			Key:      balance.Key(name),
			Capacity: s.Capacity,
			Limits:   balance.Limits{MaxConnections: s.MaxConnections, MaxPending: s.MaxPending, MaxRequests: s.MaxRequests},
		})
	}
	if len(cands) == 0 {
		m.mu.Unlock()
		return localAnswer(req, http.StatusServiceUnavailable, HeaderError, "no connector"), nil
	}
	// Map order would make the seeded choices differ between runs.
	sort.Slice(cands, func(i, j int) bool { return cands[i].Key < cands[j].Key })
	pk := m.configuredPickerLocked(m.http.instances, address)
	pk.Forget(func(k balance.Key) bool { return m.connectors[string(k)] != nil })
	k, ok := pk.Pick(m.cfg.Clock.Now(), cands, nil)
	if !ok {
		m.mu.Unlock()
		return localAnswer(req, http.StatusServiceUnavailable, HeaderOverload, "saturated"), nil
	}
	pk.Start(k, balance.Request)
	tr, target := m.targetTransportLocked(m.connectors[string(k)])
	m.mu.Unlock()

	out := *req
	u := *req.URL
	u.Host = target
	out.URL = &u
	start := m.cfg.Clock.Now()
	resp, err := tr.RoundTrip(&out)
	took := m.cfg.Clock.Since(start)
	if err != nil {
		o := balance.ConnectFailure
		if req.Context().Err() != nil {
			o = balance.Cancelled
		}
		m.instanceDone(address, k, took, o)
		return nil, err
	}
	o := balance.OutcomeForStatus(resp.StatusCode)
	resp.Body = wrapBody(resp.Body, func() { m.instanceDone(address, k, took, o) })
	return resp, nil
}

func (m *Manager) instanceDone(address string, k balance.Key, took time.Duration, o balance.Outcome) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pk := m.http.instances[address]; pk != nil {
		pk.Done(m.cfg.Clock.Now(), k, balance.Request, took, o)
	}
}

// targetTransportLocked returns the pooled transport to c's target, made
// anew when c's target or connection limit changed.
func (m *Manager) targetTransportLocked(c *connector) (*http.Transport, string) {
	s := c.spec.Spec
	t := m.http.targets[c.spec.Name]
	if t != nil && t.MaxConnsPerHost == int(s.MaxConnections) && m.http.targetOf[c.spec.Name] == s.Target {
		return t, s.Target
	}
	if t != nil {
		t.CloseIdleConnections()
	}
	d := &net.Dialer{Timeout: m.cfg.ConnectTimeout}
	t = &http.Transport{
		DialContext: d.DialContext,
		// Requests beyond MaxConnections wait here for a connection: they
		// are Istio's pending requests, bounded by MaxPending in the Picker.
		MaxConnsPerHost:     int(s.MaxConnections),
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	m.http.targets[c.spec.Name] = t
	m.http.targetOf[c.spec.Name] = s.Target
	return t, s.Target
}

// localAnswer is an answer made by weft itself, marked with header.
func localAnswer(req *http.Request, code int, header, value string) *http.Response {
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", code, http.StatusText(code)),
		StatusCode: code,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{header: {value}, "Content-Length": {"0"}},
		Body:    http.NoBody,
		Request: req,
	}
}

// closeHTTP stops the stream server and drops pooled connections.
func (m *Manager) closeHTTP() {
	m.mu.Lock()
	srv := m.http.server
	var ts []*http.Transport
	for _, t := range m.http.remotes {
		ts = append(ts, t)
	}
	for _, t := range m.http.targets {
		ts = append(ts, t)
	}
	m.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	for _, t := range ts {
		t.CloseIdleConnections()
	}
}

// streamListener hands served streams to the stream server as a
// net.Listener.
type streamListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// push gives c to the server; false once the listener is closed.
func (l *streamListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *streamListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *streamListener) Addr() net.Addr { return streamAddr{} }

type streamAddr struct{}

func (streamAddr) Network() string { return "weft" }
func (streamAddr) String() string  { return "weft-streams" }

var _ net.Listener = (*streamListener)(nil)
