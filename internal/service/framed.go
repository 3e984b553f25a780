package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/service/httpframe"
	"weft.dev/weft/internal/siteid"
)

// Requests between sites in weft's own framing (httpframe, spec.md there).
//
// The ingress has parsed the client's request once; it writes the request
// as frames straight from the handler's goroutine onto a pooled link
// stream of kind KindHTTPFrame and reads the answer's head in the same
// goroutine: no HTTP/1.1 text, no http.Transport and its two goroutines
// per connection. A stream carries one request at a time and goes back to
// the pool once its answer's end frame says the connector site read the
// whole request (FlagKeep) and the ingress wrote it. Cancelling a request
// closes its stream, which the connector site sees as the client going
// away; an upgraded request keeps its stream as the tunnel.
//
// A path whose sites do not know the kind refuses the stream (bad header
// or unknown kind) before any byte of the request is sent; the path then
// falls back, for good, to HTTP/1.1 on KindHTTP streams.

const (
	// framedBufSize is the size of each pooled stream's read and write
	// buffers: a request or answer head, and a data frame's header with a
	// piece of body, fit.
	framedBufSize = 16 << 10
	// maxIdleStreams bounds the idle streams kept per path.
	maxIdleStreams = 64
	// framedIdleTimeout is how long an idle stream is kept. The connector
	// site keeps a stream as long as the ingress does.
	framedIdleTimeout = 30 * time.Second
)

// framedTransport is the pooled transport to an address along one path.
type framedTransport struct {
	m      *Manager
	addr   string
	path   []siteid.ID
	legacy *http.Transport // HTTP/1.1 on KindHTTP streams, for a path that refuses framing

	mu     sync.Mutex // guards the fields below
	old    bool       // the path refused KindHTTPFrame
	idle   []*framedConn
	closed bool
}

// framedConn is a pooled stream with its buffers.
type framedConn struct {
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time // when it went idle
	abort func()    // closes c: what a cancelled request does, made once per stream
}

// RoundTrip sends req, which the ingress owns, on a pooled stream; a
// stream that turns out dead before any byte of an answer is replaced
// once, for a request that may be sent again.
func (t *framedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for retried := false; ; retried = true {
		fc, reused, err := t.get(req.Context())
		if err != nil {
			return nil, err
		}
		if fc == nil {
			return t.legacy.RoundTrip(req)
		}
		resp, err := t.exchange(fc, req)
		if err == nil || !reused || retried || req.Context().Err() != nil || !resendable(req) {
			return resp, err
		}
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// resendable reports whether a request that found its pooled stream dead
// may go again on a new one, as http.Transport does for a reused
// connection: nothing of it was served, but it may have been read.
func resendable(req *http.Request) bool {
	noBody := req.Body == nil || req.Body == http.NoBody
	return retryable(req.Method, req.Header) && (noBody || req.GetBody != nil)
}

// get returns an idle stream, or opens one; nil without error when the
// path takes only HTTP/1.1.
func (t *framedTransport) get(ctx context.Context) (fc *framedConn, reused bool, err error) {
	now := t.m.cfg.Clock.Now()
	t.mu.Lock()
	if t.old {
		t.mu.Unlock()
		return nil, false, nil
	}
	// The oldest are first: drop those idle too long, take the newest.
	n := 0
	for n < len(t.idle) && now.Sub(t.idle[n].since) >= framedIdleTimeout {
		n++
	}
	expired := append([]*framedConn(nil), t.idle[:n]...)
	t.idle = t.idle[n:]
	if k := len(t.idle); k > 0 {
		fc, t.idle = t.idle[k-1], t.idle[:k-1]
	}
	t.mu.Unlock()
	for _, e := range expired {
		e.c.Close()
	}
	if fc != nil {
		return fc, true, nil
	}
	octx, cancel := context.WithTimeout(ctx, t.m.cfg.ConnectTimeout)
	defer cancel()
	c, err := t.m.cfg.Net.OpenStream(octx, forward.NewHeader(forward.KindHTTPFrame, t.addr, t.m.cfg.Self, t.path))
	var rej *link.RejectError
	if errors.As(err, &rej) && (rej.Code == forward.RejectBadHeader || rej.Code == forward.RejectUnknownKind) {
		t.m.cfg.Logger.Info("a site on the path does not take framed HTTP streams; using HTTP/1.1 streams on it",
			"address", t.addr, "path", forward.SegmentNames(t.path), "reason", rej.Message)
		t.mu.Lock()
		t.old = true
		t.mu.Unlock()
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	fc = &framedConn{c: c, br: bufio.NewReaderSize(c, framedBufSize), bw: bufio.NewWriterSize(c, framedBufSize)}
	fc.abort = func() { c.Close() }
	return fc, false, nil
}

// put returns a stream whose exchange is over to the pool.
func (t *framedTransport) put(fc *framedConn) {
	fc.since = t.m.cfg.Clock.Now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		fc.c.Close()
		return
	}
	var drop *framedConn
	if len(t.idle) == maxIdleStreams {
		drop = t.idle[0]
		t.idle = append(t.idle[:0], t.idle[1:]...)
	}
	t.idle = append(t.idle, fc)
	t.mu.Unlock()
	if drop != nil {
		drop.c.Close()
	}
}

// CloseIdleConnections closes the idle streams for good: the transport is
// no longer used, and streams in use close when their requests end.
func (t *framedTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.closed = nil, true
	t.mu.Unlock()
	for _, fc := range idle {
		fc.c.Close()
	}
	t.legacy.CloseIdleConnections()
}

// exchange writes req on fc and reads its answer's head. The request body,
// if any, is written by a goroutine of its own, since an answer may come
// (and a bidirectional stream go on) before the request ends.
func (t *framedTransport) exchange(fc *framedConn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	noBody := (req.Body == nil || req.Body == http.NoBody) && len(req.Trailer) == 0
	head, err := httpframe.AppendRequest(fc.bw.AvailableBuffer(), req, noBody)
	if err != nil {
		closeBody(req)
		t.put(fc)
		return nil, err
	}
	fc.bw.Write(head)
	// The answer's body and the lease are one allocation.
	fb := &framedBody{ex: lease[*framedConn]{pool: t, c: fc, stop: context.AfterFunc(ctx, fc.abort)}}
	ex := &fb.ex
	if noBody {
		err = fc.bw.Flush()
	} else {
		ex.written = make(chan error, 1)
		// A body the ingress holds in memory (to replay it) goes out with
		// the head; any other is awaited after sending the head, so that
		// the target sees the request before its body comes.
		if req.GetBody == nil {
			err = fc.bw.Flush()
		}
		body, trailer := req.Body, req.Trailer // a retry may replace req.Body
		send := func() {
			err := writeBody(fc.bw, body, trailer)
			if err != nil {
				// The far end would wait for the rest of a body that broke:
				// end the request (its answer's read fails) instead.
				fc.c.Close()
			}
			ex.written <- err
		}
		if !t.m.life.goroutine(send) {
			go send() // the manager is closing; the stream is being closed
		}
	}
	var resp *http.Response
	if err == nil {
		resp, err = readResponse(fc.br)
	}
	if err != nil {
		ex.release(false)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("site %s: %w", t.path[len(t.path)-1], err)
	}
	resp.Request = req
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &tunnelBody{ex: ex, Reader: fc.br}
		return resp, nil
	}
	fb.resp, fb.r = resp, httpframe.NewBodyReader(fc.br, resp.Trailer)
	resp.Body = fb
	return resp, nil
}

// readResponse reads an answer's head frame.
func readResponse(br *bufio.Reader) (*http.Response, error) {
	typ, n, err := httpframe.ReadFrameHeader(br)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	if typ != httpframe.TypeResponse {
		return nil, fmt.Errorf("%w: a frame of type %d where an answer's head belongs", httpframe.ErrFrame, typ)
	}
	p, err := httpframe.ReadPayload(br, n, nil)
	if err != nil {
		return nil, err
	}
	return httpframe.DecodeResponse(p)
}

// writeBody writes a request's body and trailers as frames, flushing
// each piece as it comes (a streamed request must not wait in a buffer),
// and closes the body.
func writeBody(bw *bufio.Writer, body io.ReadCloser, trailer http.Header) error {
	w := httpframe.NewBodyWriter(bw)
	if body != nil {
		defer body.Close()
		buf := proxyBuffers.get()
		defer proxyBuffers.put(buf)
		if _, err := io.CopyBuffer(flushWriter{w, bw}, onlyReader{body}, *buf); err != nil {
			return err
		}
	}
	if err := w.End(0, trailer); err != nil {
		return err
	}
	return bw.Flush()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// flushWriter writes each piece of a body as a data frame and flushes it.
type flushWriter struct {
	w  httpframe.BodyWriter
	bw *bufio.Writer
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.bw.Flush()
	}
	return n, err
}

// onlyReader hides a body's WriterTo, so that io.CopyBuffer writes
// through flushWriter with the pooled buffer.
type onlyReader struct{ io.Reader }

// lease is one request on a pooled connection (a framed stream, or a
// connection to a target), until its answer is read or abandoned: then
// the connection goes back to its pool or is closed.
type lease[C any] struct {
	pool    connPool[C]
	c       C
	stop    func() bool // stops closing the connection when the request ends
	written chan error  // the request body's writer's result; nil when the caller wrote it
	once    sync.Once
}

// connPool is where a lease's connection goes when the lease ends.
type connPool[C any] interface {
	put(C)     // for another request
	discard(C) // closed
}

// release ends the lease. The connection is reused only when keep is set
// (the answer allowed it), the whole request was written, and the request
// did not end meanwhile (which closes the connection).
func (l *lease[C]) release(keep bool) {
	l.once.Do(func() {
		if keep && l.written != nil {
			select {
			case err := <-l.written:
				keep = err == nil
			default:
				keep = false // the body is still being written
			}
		}
		if l.stop() && keep {
			l.pool.put(l.c)
			return
		}
		l.pool.discard(l.c)
	})
}

// settle ends the lease once a read of the answer's body returned err: at
// the body's end with keep, on an error without.
func (l *lease[C]) settle(err error, keep bool) {
	if err == io.EOF {
		l.release(keep)
	} else if err != nil {
		l.release(false)
	}
}

// discard closes a stream that will not be reused.
func (t *framedTransport) discard(fc *framedConn) { fc.c.Close() }

// framedBody is an answer's body read from its stream.
type framedBody struct {
	ex   lease[*framedConn]
	resp *http.Response
	r    *httpframe.BodyReader
}

func (b *framedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.resp.Trailer = b.r.Trailer
	}
	b.ex.settle(err, b.r.Flags&httpframe.FlagKeep != 0)
	return n, err
}

func (b *framedBody) Close() error {
	b.ex.release(false) // no-op after the end was read
	return nil
}

// tunnelBody is the stream of an upgraded request, after its 101 answer:
// what ReverseProxy copies both ways.
type tunnelBody struct {
	ex *lease[*framedConn]
	io.Reader
}

func (b *tunnelBody) Write(p []byte) (int, error) { return b.ex.c.c.Write(p) }

func (b *tunnelBody) Close() error {
	b.ex.release(false)
	return nil
}

var (
	_ connPool[*framedConn] = (*framedTransport)(nil)
	_ connPool[*h1Conn]     = (*h1Client)(nil)
)
