package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Client is an http connector's pool of HTTP/1.1 connections to a
// plain-text target, used in place of http.Transport for requests that
// ask for no upgrade. A request is written and its answer's head read in
// the caller's goroutine (the connector site's stream worker): under load
// http.Transport's two goroutines per connection, and the hand-offs to
// and from them, were a third of the connector site's CPU
// (bench/README.md, issue 14). The text of both directions is net/http's
// own (Request.Write, ReadResponse), so chunked bodies, trailers,
// Content-Length, answers without a body (HEAD, 1xx, 204, 304) and
// Connection: close are read as http.Transport reads them.
//
// What it does not do, and http.Transport did: TLS (a TLS target keeps
// http.Transport, which also speaks h2 by ALPN), waiting for 100 Continue
// before sending a body (http.Transport does not either with its default
// ExpectContinueTimeout of zero), and a read loop that notices an idle
// connection closed by the target. Instead a request that may be sent
// again (resendable) is, on a new connection, when its reused one turns
// out dead before any byte of an answer; and for any other request, or
// after h1CheckAfter idle, a connection is checked before it is reused
// (connAlive), a system call that was 6% of the connector site's CPU when
// done for every request.
type h1Client struct {
	target string
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	now    func() time.Time
	max    int // connections open or being dialled at once; 0 for no bound

	mu      sync.Mutex // guards the fields below
	idle    []*h1Conn  // oldest first
	open    int        // connections open or being dialled
	waiters []chan *h1Conn
	sweep   *time.Timer // closes idle connections once they expire
	closed  bool        // CloseIdleConnections was called: keep none idle
}

const (
	// h1MaxIdle bounds the idle connections kept to one target.
	h1MaxIdle = 64
	// h1IdleTimeout is how long an idle connection is kept.
	h1IdleTimeout = 90 * time.Second
	// h1CheckAfter is how long a connection may sit idle before even a
	// resendable request checks it first (connAlive): a target that
	// speaks unasked, such as a 408 at its own idle timeout, does so after
	// seconds of quiet, and the answer would otherwise be taken for the
	// request's. Busy connections, reused within it, skip the system call.
	h1CheckAfter = time.Second
	// h1MaxHead bounds an answer's head, as httpframe.MaxHead bounds the
	// frame it travels in to the ingress.
	h1MaxHead = 1 << 20
	// h1Max1xx bounds the informational answers before the final one, as
	// http.Transport does.
	h1Max1xx = 5
	// h1BufSize is each connection's read and write buffer, as
	// http.Transport's.
	h1BufSize = 4 << 10
)

// badAnswerError is a failure in what the target answered, as opposed to
// one to reach it.
type badAnswerError struct{ err error }

func (e *badAnswerError) Error() string { return "bad answer from the target: " + e.err.Error() }
func (e *badAnswerError) Unwrap() error { return e.err }

// errHeadTooLong is the error when a target's answer's head exceeds
// h1MaxHead.
var errHeadTooLong = fmt.Errorf("the answer's head is longer than %d bytes", h1MaxHead)

// h1Conn is one connection to the target with its buffers.
type h1Conn struct {
	net.Conn
	br    *bufio.Reader // reads through the h1Conn itself, for limit
	bw    *bufio.Writer
	limit int64     // bytes still allowed to be read while a head is read; -1 when unbounded
	since time.Time // when it went idle
	abort func()    // closes the connection: what a cancelled request does, made once per connection
}

// Read is the buffer's source: it stops at limit while a head is read.
func (c *h1Conn) Read(p []byte) (int, error) {
	if c.limit < 0 {
		return c.Conn.Read(p)
	}
	if c.limit == 0 {
		return 0, errHeadTooLong
	}
	if int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.Conn.Read(p)
	c.limit -= int64(n)
	return n, err
}

// RoundTrip sends req to the target, which req.URL names, and returns its
// answer; the answer's body must be closed. req's body is closed.
func (cl *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := validRequest(req); err != nil {
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	again := resendable(req)
	for {
		pc, reused, err := cl.get(ctx, !again)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, answered, err := cl.exchange(pc, req)
		if err == nil {
			return resp, nil
		}
		// A reused connection the target closed meanwhile fails before any
		// byte of an answer: http.Transport sends such a request again.
		if answered || !reused || ctx.Err() != nil || !again {
			closeBody(req)
			return nil, err
		}
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// validRequest refuses what would let a request's fields smuggle another
// request into the connection, as http.Transport does.
func validRequest(req *http.Request) error {
	if req.Method != "" && strings.IndexFunc(req.Method, func(r rune) bool { return !httpguts.IsTokenRune(r) }) >= 0 {
		return fmt.Errorf("invalid method %q", req.Method)
	}
	for _, h := range []http.Header{req.Header, req.Trailer} {
		for k, vv := range h {
			if !httpguts.ValidHeaderFieldName(k) {
				return fmt.Errorf("invalid header field name %q", k)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					return fmt.Errorf("invalid header field value for %q", k)
				}
			}
		}
	}
	return nil
}

// get returns an idle connection, checked alive when check is set, or
// dials one; reused says it served a request before. When max connections
// are open it waits for one to be given back or closed, or for ctx to end.
func (cl *h1Client) get(ctx context.Context, check bool) (pc *h1Conn, reused bool, err error) {
	for {
		cl.mu.Lock()
		if k := len(cl.idle); k > 0 {
			pc, cl.idle = cl.idle[k-1], cl.idle[:k-1]
			cl.mu.Unlock()
			idle := cl.now().Sub(pc.since)
			check := check || idle >= h1CheckAfter
			if idle < h1IdleTimeout && pc.br.Buffered() == 0 && (!check || connAlive(pc.Conn)) {
				return pc, true, nil
			}
			cl.discard(pc)
			continue
		}
		if cl.max <= 0 || cl.open < cl.max {
			cl.open++
			cl.mu.Unlock()
			pc, err = cl.dialConn(ctx)
			return pc, false, err
		}
		w := make(chan *h1Conn, 1)
		cl.waiters = append(cl.waiters, w)
		cl.mu.Unlock()
		select {
		case pc = <-w:
			if pc == nil { // a connection was closed, and its place given to us
				pc, err = cl.dialConn(ctx)
				return pc, false, err
			}
			if pc.br.Buffered() == 0 && (!check || connAlive(pc.Conn)) {
				return pc, true, nil
			}
			cl.discard(pc)
		case <-ctx.Done():
			if !cl.leave(w) {
				// A connection, or a place, was handed over meanwhile: pass
				// it on.
				if pc = <-w; pc != nil {
					cl.put(pc)
				} else {
					cl.discard(nil)
				}
			}
			return nil, false, ctx.Err()
		}
	}
}

// dialConn opens a connection in a place already counted in open; the
// place is freed if the dial fails.
func (cl *h1Client) dialConn(ctx context.Context) (*h1Conn, error) {
	c, err := cl.dial(ctx, "tcp", cl.target)
	if err != nil {
		cl.discard(nil)
		return nil, err
	}
	pc := &h1Conn{Conn: c, limit: -1}
	pc.abort = func() { c.Close() }
	pc.br = bufio.NewReaderSize(pc, h1BufSize)
	pc.bw = bufio.NewWriterSize(c, h1BufSize)
	return pc, nil
}

// leave removes w from the waiters; false if it was handed something
// already.
func (cl *h1Client) leave(w chan *h1Conn) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for i, x := range cl.waiters {
		if x == w {
			cl.waiters = append(cl.waiters[:i], cl.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// put gives a connection whose exchange is over to the first waiter, or
// keeps it idle.
func (cl *h1Client) put(pc *h1Conn) {
	cl.mu.Lock()
	if len(cl.waiters) > 0 {
		w := cl.waiters[0]
		cl.waiters = cl.waiters[1:]
		cl.mu.Unlock()
		w <- pc
		return
	}
	if cl.closed || len(cl.idle) == h1MaxIdle {
		cl.mu.Unlock()
		cl.discard(pc)
		return
	}
	pc.since = cl.now()
	cl.idle = append(cl.idle, pc)
	if cl.sweep == nil {
		cl.sweep = time.AfterFunc(h1IdleTimeout, cl.expire)
	}
	cl.mu.Unlock()
}

// discard closes pc, if any, and frees its place for the first waiter.
func (cl *h1Client) discard(pc *h1Conn) {
	if pc != nil {
		pc.Close()
	}
	cl.mu.Lock()
	cl.open--
	var w chan *h1Conn
	if len(cl.waiters) > 0 {
		w = cl.waiters[0]
		cl.waiters = cl.waiters[1:]
		cl.open++ // the waiter's, which dials
	}
	cl.mu.Unlock()
	if w != nil {
		w <- nil
	}
}

// expire closes the connections idle too long, and waits for the next to
// be.
func (cl *h1Client) expire() {
	now := cl.now()
	cl.mu.Lock()
	n := 0
	for n < len(cl.idle) && now.Sub(cl.idle[n].since) >= h1IdleTimeout {
		n++
	}
	old := append([]*h1Conn(nil), cl.idle[:n]...)
	cl.idle = append(cl.idle[:0], cl.idle[n:]...)
	if len(cl.idle) > 0 {
		cl.sweep.Reset(h1IdleTimeout - now.Sub(cl.idle[0].since))
	} else {
		cl.sweep = nil
	}
	cl.mu.Unlock()
	for _, pc := range old {
		cl.discard(pc)
	}
}

// CloseIdleConnections closes the idle connections for good: the client
// is no longer used, and connections in use close when their requests
// end.
func (cl *h1Client) CloseIdleConnections() {
	cl.mu.Lock()
	idle := cl.idle
	cl.idle, cl.closed = nil, true
	if cl.sweep != nil {
		cl.sweep.Stop()
		cl.sweep = nil
	}
	cl.mu.Unlock()
	for _, pc := range idle {
		cl.discard(pc)
	}
}

// exchange writes req on pc and reads its answer's head; answered says
// some of an answer was read. A body the caller holds in memory (one it
// may send again) or none goes out from this goroutine; any other is
// written by a goroutine of its own, since the target may answer (and a
// bidirectional stream go on) before the request ends.
func (cl *h1Client) exchange(pc *h1Conn, req *http.Request) (_ *http.Response, answered bool, _ error) {
	ctx := req.Context()
	// The answer's body and the lease are one allocation.
	hb := &h1Body{x: lease[*h1Conn]{pool: cl, c: pc, stop: func() bool { return true }}}
	x := &hb.x
	if ctx.Done() != nil {
		x.stop = context.AfterFunc(ctx, pc.abort)
	}
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		var err error
		if !writeHead(pc.bw, req) {
			err = req.Write(pc.bw)
		}
		if err == nil {
			err = pc.bw.Flush()
		}
		if err != nil {
			x.release(false)
			return nil, false, cl.failed(ctx, err)
		}
	} else {
		x.written = make(chan error, 1)
		go func() {
			err := req.Write(pc.bw)
			if err == nil {
				err = pc.bw.Flush()
			}
			if err != nil {
				// A body that broke (a client's bad chunk) leaves the
				// target waiting for the rest: end the request, as
				// http.Transport does, rather than wait for an answer.
				pc.Close()
			}
			x.written <- err
		}()
	}
	resp, answered, err := pc.readResponse(req)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		err = errors.New("101 to a request that asked for no upgrade")
	}
	if err != nil {
		x.release(false)
		if answered {
			err = &badAnswerError{err}
		}
		return nil, answered, cl.failed(ctx, err)
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		x.release(keep)
		return resp, true, nil
	}
	hb.keep, hb.body = keep, resp.Body
	resp.Body = hb
	return resp, true, nil
}

// writeHead writes the head of a request without a body as Request.Write
// would, and reports whether it did; false for what it leaves to
// Request.Write: a body, trailers, a host to be cleaned, a target with
// control bytes (an error there), a trace of what is written. Request.Write
// (fmt, a transfer writer, a sorted copy of the header) was 8% of the
// connector site's CPU.
func writeHead(bw *bufio.Writer, req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody || req.ContentLength != 0 || len(req.Trailer) > 0 || len(req.TransferEncoding) > 0 {
		return false
	}
	if tr := httptrace.ContextClientTrace(req.Context()); tr != nil && (tr.WroteHeaderField != nil || tr.WroteHeaders != nil || tr.WroteRequest != nil) {
		return false
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	uri := req.URL.RequestURI()
	if !plainASCII(host) || strings.IndexByte(host, '%') >= 0 || !httpguts.ValidHostHeader(host) || !plainASCII(uri) {
		return false
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	b := bw.AvailableBuffer()
	b = append(append(append(b, method...), ' '), uri...)
	b = append(append(append(b, " HTTP/1.1\r\nHost: "...), host...), "\r\n"...)
	ua := "Go-http-client/1.1" // as Request.Write, unless the header has one, maybe empty
	if vv, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vv) > 0 {
			ua = textproto.TrimString(vv[0])
		}
	}
	if ua != "" {
		b = append(append(append(b, "User-Agent: "...), ua...), "\r\n"...)
	}
	if req.Close && !httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close") {
		b = append(b, "Connection: close\r\n"...)
	}
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch: // many servers want a length
		b = append(b, "Content-Length: 0\r\n"...)
	}
	for k, vv := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vv { // validRequest checked them
			b = append(append(append(append(b, k...), ": "...), textproto.TrimString(v)...), "\r\n"...)
		}
	}
	bw.Write(append(b, "\r\n"...))
	return true
}

// plainASCII reports whether s has only printable ASCII.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// failed is the error of an exchange that failed: the request's own end,
// when it ended, else what went wrong with the target.
func (cl *h1Client) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return fmt.Errorf("target %s: %w", cl.target, err)
}

// readResponse reads the final answer's head to req, passing
// informational answers on to the request's httptrace.ClientTrace;
// answered says some of an answer was read.
func (pc *h1Conn) readResponse(req *http.Request) (_ *http.Response, answered bool, _ error) {
	trace := httptrace.ContextClientTrace(req.Context())
	for n := 0; ; n++ {
		pc.limit = h1MaxHead
		resp, err := http.ReadResponse(pc.br, req)
		left := pc.limit
		pc.limit = -1
		answered = answered || left < h1MaxHead
		if err != nil {
			if left == 0 {
				err = errHeadTooLong
			} else if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, answered, err
		}
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, true, nil
		}
		if n == h1Max1xx {
			return nil, true, errors.New("too many informational (1xx) answers")
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, true, err
			}
		}
	}
}

// h1Body is an answer's body read from its connection. Closed before its
// end, it closes the connection rather than reading the rest.
type h1Body struct {
	x    lease[*h1Conn]
	keep bool
	body io.ReadCloser // net/http's: it reads the trailers in at the end
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.x.settle(err, b.keep)
	return n, err
}

func (b *h1Body) Close() error {
	b.x.release(false) // no-op after the end was read
	return nil
}
