package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/observe/tracing"
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
func (m *Manager) ServeHTTPStream(st Stream, h *forward.Header) {
	a := m.httpServed(st, h)
	if a == nil {
		return
	}
	ss := m.streamServer()
	if ss == nil {
		st.Reject(forward.RejectNoConnector, fmt.Sprintf("%q: %v", h.Address, ErrClosed))
		return
	}
	if err := st.Confirm(); err != nil {
		st.Close()
		return
	}
	c := &addressConn{Conn: st, addr: a}
	c.trace.Store(&h.Trace)
	if !ss.ln.push(c) {
		st.Reset(forward.ResetAborted)
	}
}

// httpServed returns the address an HTTP stream names, or rejects the
// stream and returns nil when no http connector here serves it.
func (m *Manager) httpServed(st Stream, h *forward.Header) *address {
	a := m.lookup(h.Address)
	if a == nil || len(a.view.Load().instances) == 0 {
		st.Reject(forward.RejectNoConnector, fmt.Sprintf("no http connector for %q here", h.Address))
		return nil
	}
	return a
}

type addressKey struct{}

// addressConn is a served stream with the address its header named.
type addressConn struct {
	net.Conn
	addr      *address
	abandoned atomic.Bool
	// trace is the stream header's trace context until the first request
	// takes it (egressContext).
	trace atomic.Pointer[forward.TraceContext]
}

// takeTrace returns the stream's trace context the first time, zero after.
func (c *addressConn) takeTrace() forward.TraceContext {
	if t := c.trace.Swap(nil); t != nil {
		return *t
	}
	return forward.TraceContext{}
}

// longAgo is a deadline that has passed.
var longAgo = time.Unix(1, 0)

// abandonRead ends the reading of the stream: a request body still being
// read ends with an error, and the server, which cannot find the next
// request, closes the stream after the answer it is writing. That is how
// an answer that ends before its request (a gRPC status sent while the
// client still streams) finishes: net/http would otherwise wait, after
// the answer, for the rest of a request body that may never come.
func (c *addressConn) abandonRead() {
	c.abandoned.Store(true)
	c.Conn.SetReadDeadline(longAgo)
}

// SetReadDeadline keeps an abandoned stream's reads failing when the
// server clears its deadlines for the next request.
func (c *addressConn) SetReadDeadline(t time.Time) error {
	if c.abandoned.Load() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *addressConn) SetDeadline(t time.Time) error {
	if c.abandoned.Load() {
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

// streamBody is a request body read from a served stream. Closed before
// its end, once the target's answer is over, it abandons the stream's
// reading rather than waiting for the rest.
type streamBody struct {
	io.ReadCloser
	c   *addressConn
	eof atomic.Bool
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

func (b *streamBody) Close() error {
	if !b.eof.Load() {
		b.c.abandonRead()
	}
	return b.ReadCloser.Close()
}

// streamServer is the site's server of KindHTTP streams: one http.Server
// whose handler sends each request to one of the site's connectors for
// the stream's address.
type streamServer struct {
	srv *http.Server
	ln  *connListener
}

// streamServer returns the stream server, started on first use; nil once
// the manager is closing.
func (m *Manager) streamServer() *streamServer {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.streams != nil {
		return m.streams
	}
	sl := newConnListener(streamAddr{})
	proxy := &httputil.ReverseProxy{
		// Director rather than Rewrite: Rewrite drops the X-Forwarded-*
		// headers the ingress set for the client.
		Director: func(r *http.Request) {
			r.URL.Scheme = "http"
			r.URL.Host = r.Context().Value(addressKey{}).(*addressConn).addr.name
		},
		Transport: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			c := r.Context().Value(addressKey{}).(*addressConn)
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = &streamBody{ReadCloser: r.Body, c: c}
			}
			return m.egress(c.addr, c.takeTrace(), r)
		}),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The ingress reads this header as "no byte of an answer":
			// an idempotent request may go elsewhere.
			w.Header().Set(HeaderError, unreachableReason(err))
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
		ErrorLog:   slog.NewLogLogger(m.cfg.Logger.Handler(), slog.LevelDebug),
		BufferPool: proxyBuffers,
	}
	srv := &http.Server{
		Handler: fullDuplex(proxy),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, addressKey{}, c.(*addressConn))
		},
		BaseContext: func(net.Listener) context.Context { return m.life.ctx },
		// Longer than the ingress's idle timeout, so that the ingress
		// closes idle streams first.
		IdleTimeout: 90 * time.Second,
		ErrorLog:    slog.NewLogLogger(m.cfg.Logger.Handler(), slog.LevelDebug),
	}
	if !m.life.goroutine(func() { srv.Serve(sl) }) {
		return nil
	}
	m.streams = &streamServer{srv: srv, ln: sl}
	return m.streams
}

// egress sends r, a request that came on a stream, to one of this site's
// connectors for a, in the request's egress span. first is the stream
// header's trace context for the stream's first request.
func (m *Manager) egress(a *address, first forward.TraceContext, r *http.Request) (*http.Response, error) {
	ctx, span := m.startHop(m.egressContext(first, r), "weft.egress", trace.SpanKindServer, func() []attribute.KeyValue {
		return []attribute.KeyValue{tracing.KeyAddress.String(a.name), attribute.String("http.request.method", r.Method)}
	})
	defer span.End()
	resp, err := m.roundTripLocal(a, withContext(r, ctx))
	tracing.Fail(span, err)
	return resp, err
}

// withContext is r with context ctx; r itself when it has ctx already, as
// an untraced request does after an unstarted span: a copy of a request
// is a fifth of what the connector site allocates per request.
func withContext(r *http.Request, ctx context.Context) *http.Request {
	if ctx == r.Context() {
		return r
	}
	return r.WithContext(ctx)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTripLocal sends req to one of this site's http connectors for a.
// req is the caller's own copy: its header and URL are changed. It goes to
// the Picker's choice among those neither saturated nor ejected. When all
// are saturated it answers 503 with Weft-Overload itself, without touching
// a target, so that the ingress overflows and no health is blamed.
func (m *Manager) roundTripLocal(a *address, req *http.Request) (*http.Response, error) {
	lc, served, ok := a.pickInstance(m.cfg.Clock.Now())
	switch {
	case !served:
		return localAnswer(req, http.StatusServiceUnavailable, HeaderError, "no connector"), nil
	case !ok:
		return localAnswer(req, http.StatusServiceUnavailable, HeaderOverload, "saturated"), nil
	}
	k := balance.Key(lc.name)
	ctx, span := m.startHop(req.Context(), "weft.target", trace.SpanKindClient, func() []attribute.KeyValue {
		return []attribute.KeyValue{tracing.KeyAddress.String(a.name), attribute.String("weft.connector", lc.name), attribute.String("server.address", lc.spec.Target)}
	})
	defer span.End()
	proto := req.Header.Get(HeaderProto)
	req.Header.Del(HeaderProto)
	injectTrace(ctx, req.Header)
	start := m.cfg.Clock.Now()
	resp, err := lc.transport.RoundTrip(withContext(req, ctx), proto)
	took := m.cfg.Clock.Since(start)
	if resp != nil && span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}
	tracing.Fail(span, err)
	if err != nil {
		o := balance.ConnectFailure
		if req.Context().Err() != nil {
			o = balance.Cancelled
		}
		a.instanceDone(m.cfg.Clock.Now(), k, took, o)
		return nil, err
	}
	resp.Body = wrapBody(resp.Body, func() {
		a.instanceDone(m.cfg.Clock.Now(), k, took, answerOutcome(resp, defaultGRPCRetryOn, req.Context().Err() != nil))
	})
	return resp, nil
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

// connListener hands connections to an http.Server as a net.Listener:
// served streams to the stream server, and the connections the lean
// server does not serve (h1server.go) to a listener's http.Server.
type connListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// push gives c to the server; false once the listener is closed.
func (l *connListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

type streamAddr struct{}

func (streamAddr) Network() string { return "weft" }
func (streamAddr) String() string  { return "weft-streams" }

var _ net.Listener = (*connListener)(nil)
