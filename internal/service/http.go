package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/siteid"
)

// HTTP at the ingress.
//
// A listener with protocol http is an http.Server speaking HTTP/1.1 and h2c
// with prior knowledge (net/http's own HTTP/2, the bundled x/net/http2, so
// no h2c wrapper is needed), in front of which a plain-text listener has
// a lean HTTP/1.1 server (h1server.go) that serves what it can itself and
// hands the rest to the http.Server; the handler of both is the ingress
// (http_ingress.go):
// it balances each request through the address's balance.Picker, retries,
// hedges and overflows in the handler's goroutine, and writes the answer
// straight back, doing what a proxy must (hop-by-hop headers, trailers,
// flushing of streamed answers); upgrades such as WebSocket go through an
// httputil.ReverseProxy, which hijacks the connection for the tunnel.
//
// Between sites each request travels in weft's own framing on a link
// stream of kind KindHTTPFrame (framed.go, httpframe/spec.md), and those
// streams are pooled and reused (keep-alive) per path; a path with a site
// that does not know the framing gets HTTP/1.1 on KindHTTP streams, pooled
// by an http.Transport. A stream, not h2, per request in flight, because
// the link already multiplexes streams with per-stream flow control: h2
// inside it would add a second, nested flow-control window (the
// head-of-line and window-tuning trouble of TCP-over-TCP, one level up) to
// buy nothing. A stream per request in flight also makes cancelling one
// request exactly closing one stream, which the connector site sees as the
// client going away and passes to the target as a cancelled request; and
// an upgraded request simply keeps its stream as the tunnel. The price is
// one stream open (a link round trip) whenever the pool has no idle stream.

// maxReplayBody bounds the request body kept to send a request again (a
// retry or the second copy of a hedge); larger bodies are streamed once.
const maxReplayBody = 64 << 10

// errNoCandidate is the error when no connector could take a request.
var errNoCandidate = errors.New("no connector could take the request")

// serveHTTP runs an HTTP listener until its net.Listener is closed.
// Requests in flight and upgraded connections go on after that, as TCP
// connections of a deleted listener do, until the Manager closes; idle
// keep-alive connections are closed as they become idle, since no new
// request may come through a deleted listener.
func (m *Manager) serveHTTP(l *listener) {
	pol, err := parseHedge(l.spec.Spec.Hedge)
	retryOn, err2 := parseGRPCCodes(l.spec.Spec.GRPCRetryOn)
	if err := errors.Join(err, err2); err != nil { // Default validated them; only a hand-made spec gets here
		m.cfg.Logger.Error("listener stopped", "listener", l.spec.Name, "err", err)
		l.ln.Close()
		close(l.done)
		return
	}
	in := &ingress{m: m, addr: l.addr, hedge: pol, retries: resource.DefaultRetries, retryOn: retryOn, policy: balancePolicy(l.spec.Spec.Balance)}
	if r := l.spec.Spec.Retries; r != nil {
		in.retries = int(*r)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true) // over TLS, by ALPN
	protos.SetUnencryptedHTTP2(true)
	in.errorLog = slog.NewLogLogger(m.cfg.Logger.Handler(), slog.LevelDebug)
	in.upgrades = in.upgradeProxy()
	in.metrics = newListenerMetrics(m.cfg.Metrics, l.addr.name)
	srv := &http.Server{
		Handler:           in,
		Protocols:         &protos,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          in.errorLog,
		BaseContext:       func(net.Listener) context.Context { return m.life.ctx },
	}
	if l.lean {
		err = m.serveLean(l, in, srv)
	} else {
		err = srv.Serve(l.ln) // TLS (h2 by ALPN): net/http serves it all
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		m.cfg.Logger.Error("listener stopped", "listener", l.spec.Name, "err", err)
	}
	close(l.done)
	// Shutdown ends early when the Manager closes; Close then cuts what
	// is left.
	if srv.Shutdown(m.life.ctx) != nil {
		srv.Close()
	}
}

// leanHTTP1 is whether plain-text HTTP listeners have the lean server;
// false only in tests that compare it with net/http's.
var leanHTTP1 = true

// serveLean serves a plain-text HTTP listener's connections with the lean
// HTTP/1.1 server (h1server.go), which hands srv what it does not serve,
// until the listener is closed.
func (m *Manager) serveLean(l *listener, in *ingress, srv *http.Server) error {
	handover := newConnListener(l.ln.Addr())
	lean := newH1Server(in, m.life, handover)
	l.h1.Store(lean)
	defer lean.drain()
	defer handover.Close()
	if !m.life.goroutine(func() { srv.Serve(handover) }) {
		l.ln.Close()
		return net.ErrClosed
	}
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return err
		}
		if !m.life.goroutine(func() { lean.serve(c) }) {
			c.Close()
		}
	}
}

// ingress is the handler of one HTTP listener, and the http.RoundTripper
// its requests go through.
type ingress struct {
	m        *Manager
	addr     *address
	hedge    hedgePolicy
	retries  int
	retryOn  grpcCodes // gRPC codes that are failures, retried when safe
	policy   balance.Policy
	metrics  *listenerMetrics
	upgrades *httputil.ReverseProxy // for upgrade requests (WebSocket)
	errorLog *log.Logger
}

// proxyBuffers are the copy buffers of bodies at both sites (and of
// their reverse proxies). Without a pool ReverseProxy allocated 32 KiB
// per answer: three quarters of all bytes a site allocated per request in
// bench/run-http.sh --wrk, and most of its garbage collection.
var proxyBuffers = &bufferPool{}

var _ httputil.BufferPool = proxyBuffers

// bufferPool holds *[]byte: its own copies use get and put, which keep the
// pointer; Put of httputil.BufferPool allocates one per buffer returned.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) get() *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return v
	}
	buf := make([]byte, 32<<10)
	return &buf
}

func (b *bufferPool) put(buf *[]byte) { b.p.Put(buf) }

func (b *bufferPool) Get() []byte { return *b.get() }

func (b *bufferPool) Put(buf []byte) { b.put(&buf) }

// RoundTrip sends one request to a candidate, with retries, overflow and,
// when the listener asks for it, a hedge copy.
func (in *ingress) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(in.m.fresh(in.addr).http.list) == 0 {
		return nil, fmt.Errorf("%w: no http connector for %q", errNoCandidate, in.addr.name)
	}
	hedge := in.hedge.mode != hedgeOff && hedgeable(req.Method, req.Header)
	retry := in.retries > 0 && retryable(req.Method, req.Header)
	if hedge || retry {
		ok, err := replayable(req)
		if err != nil {
			return nil, err
		}
		hedge, retry = hedge && ok, retry && ok
	}
	retries := 0
	if retry {
		retries = in.retries
	}
	var delay time.Duration
	if hedge {
		p95, known := in.addr.p95()
		delay, hedge = in.hedge.delay(p95, known)
	}
	return in.runRace(req, hedge, delay, retries)
}

// balancePolicy is the balance.Policy of a validated ListenerSpec.Balance.
func balancePolicy(s string) balance.Policy {
	switch s {
	case resource.BalanceLatency:
		return balance.Policy{Mode: balance.ByLatency}
	case resource.BalanceCostLatency:
		return balance.Policy{Mode: balance.ByCostLatency}
	}
	return balance.Policy{Mode: balance.ByCost}
}

// remoteTransport returns the pooled transport to a along path.
func (m *Manager) remoteTransport(a *address, path []siteid.ID) http.RoundTripper {
	return a.remote(path, func() *framedTransport {
		return &framedTransport{m: m, addr: a.name, path: path, legacy: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				ctx, cancel := context.WithTimeout(ctx, m.cfg.ConnectTimeout)
				defer cancel()
				return m.cfg.Net.OpenStream(ctx, forward.NewHeader(forward.KindHTTP, a.name, m.cfg.Self, path))
			},
			MaxIdleConnsPerHost: maxIdleStreams,
			// Shorter than the connector site's idle timeout, so that the
			// ingress closes an idle stream before the far end may, and never
			// sends a request into a stream being closed.
			IdleConnTimeout:    framedIdleTimeout,
			DisableCompression: true,
		}}
	})
}

// replayable makes req's body readable again through GetBody when it is
// small enough to keep, and reports whether it is. A body of unknown
// length (HTTP/2, gRPC) is read up to the bound to find out: a request
// that may be sent twice is one whole message, such as a unary RPC, not a
// stream the client feeds as answers come. One that turns out longer is
// streamed once, the part read first.
func replayable(req *http.Request) (bool, error) {
	if req.Body == nil || req.Body == http.NoBody {
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		return true, nil
	}
	if req.ContentLength > maxReplayBody {
		return false, nil
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, maxReplayBody+1))
	if err != nil {
		return false, err
	}
	if len(b) > maxReplayBody {
		if req.ContentLength >= 0 { // the length was a lie; cannot happen with net/http
			return false, fmt.Errorf("request body longer than its Content-Length")
		}
		req.Body = readCloser{io.MultiReader(bytes.NewReader(b), req.Body), req.Body}
		return false, nil
	}
	req.Body.Close()
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	req.Body, _ = req.GetBody()
	return true, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// fullDuplex lets h read an HTTP/1.1 request's body while it writes the
// answer (enableFullDuplex).
func fullDuplex(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enableFullDuplex(w, r)
		h.ServeHTTP(w, r)
	})
}

// enableFullDuplex lets the handler of r read an HTTP/1.1 request's body
// while it writes the answer, as bidirectional streams (gRPC's among
// them) need; HTTP/2 always allows it.
func enableFullDuplex(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		http.NewResponseController(w).EnableFullDuplex()
	}
}

func closeResponse(r *http.Response) {
	if r != nil {
		r.Body.Close()
	}
}

// wrapBody calls done once when body is closed. It keeps the Write of an
// upgraded connection's body, which ReverseProxy needs for the tunnel.
func wrapBody(body io.ReadCloser, done func()) io.ReadCloser {
	b := &doneBody{ReadCloser: body, done: done}
	if rw, ok := body.(io.ReadWriteCloser); ok {
		return &doneRWBody{doneBody: b, w: rw}
	}
	return b
}

type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

type doneRWBody struct {
	*doneBody
	w io.Writer
}

func (b *doneRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }
