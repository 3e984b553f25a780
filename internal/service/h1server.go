package service

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The lean HTTP/1.1 server of a plain-text HTTP listener (issue 14).
//
// Each client connection has one goroutine that reads and parses its
// requests (http.ReadRequest: net/http's own parser) and a worker
// goroutine that runs the ingress's ServeHTTP for one request at a time
// and writes the answer straight to the connection, head and a short body
// in one write. While the worker runs, the reading goroutine reads ahead
// for the next request; that read is also what notices a client going
// away (EOF or reset), which cancels the request's context as net/http's
// background read does, without net/http's per-request goroutine, read
// deadlines and response machinery (bench/README.md, "A lean HTTP/1.1
// server at the listener"). A request without body, with nothing sent
// after it, is answered by the reading goroutine itself, without the
// hand-off to the worker and back (most requests: bench/README.md, "Less
// CPU per request"); if it is still running after h1sWatchAfter, a
// goroutine begins the read ahead for it.
//
// What it does not serve is handed, with the bytes already read, to the
// listener's http.Server through a listener of handed-over connections,
// and served there as before for the rest of the connection: h2c with
// prior knowledge, upgrades (WebSocket), CONNECT, a target in absolute
// form, any version but HTTP/1.x, a head longer than h1sBufSize, and
// requests that parse but that net/http's server refuses (missing or bad
// Host, bad header fields, an Expect other than 100-continue on a body),
// so that those get net/http's own 400, 417, 431 or 505. A head
// http.ReadRequest cannot parse gets the 400 (or 501) net/http writes
// for it, here. TLS listeners are served by the http.Server alone (ALPN
// h2).
//
// It keeps the http.Server's behaviour where a client can see it: the
// answer's framing (Content-Length when the handler ends having written
// at most h1sChunkAfter bytes, else chunked, or close-delimited for
// HTTP/1.0), Date, Content-Type sniffing, HEAD/1xx/204/304 without body,
// Connection: close and HTTP/1.0 keep-alive, 100 Continue on the first
// read of the body, trailers (declared and http.TrailerPrefix), a flush
// per Flush, an aborted handler's connection closed; a request head must
// arrive within h1sHeaderTimeout of its first byte (of the connection,
// for the first request), idle connections wait without a deadline, and
// a body the handler left unread is read away up to h1sMaxDiscard before
// the connection is reused.

const (
	// h1sBufSize is the read buffer of a connection, and so the longest
	// head served here; a longer one goes to net/http (MaxHeaderBytes).
	h1sBufSize = 8 << 10
	// h1sWriteSize is the write buffer of a connection.
	h1sWriteSize = 4 << 10
	// h1sHeaderTimeout is the http.Server's ReadHeaderTimeout.
	h1sHeaderTimeout = 30 * time.Second
	// h1sChunkAfter is how much of a body is held before the head is
	// written, as net/http's bufferBeforeChunkingSize.
	h1sChunkAfter = 2048
	// h1sMaxDiscard is how much of a body a handler left unread is read
	// away to keep the connection, as net/http's maxPostHandlerReadBytes.
	h1sMaxDiscard = 256 << 10
	// h1sLingerTimeout bounds the wait for a client to close after the
	// connection was closed for writing with its request body unread, as
	// net/http's rstAvoidanceDelay.
	h1sLingerTimeout = 500 * time.Millisecond
	// h1sWatchAfter is how long a request answered by the reading
	// goroutine runs before a client going away is watched for: a
	// shorter one takes less than a goroutine's start would cost.
	h1sWatchAfter = 20 * time.Millisecond
)

// errHandover is why a connection goes to the http.Server.
var errHandover = errors.New("handed to net/http")

// h1Server is a listener's lean server.
type h1Server struct {
	in       *ingress
	life     *lifecycle
	handover *connListener

	mu       sync.Mutex // guards conns and the draining transition
	conns    map[*h1sConn]struct{}
	draining atomic.Bool  // the listener was deleted: serve no new request
	served   atomic.Int64 // requests served here, not handed over (for tests)
	workers  atomic.Int64 // workers started (for tests)
}

func newH1Server(in *ingress, life *lifecycle, handover *connListener) *h1Server {
	return &h1Server{in: in, life: life, handover: handover, conns: map[*h1sConn]struct{}{}}
}

var (
	h1sReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, h1sBufSize) }}
	h1sWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, h1sWriteSize) }}
)

// serve runs one client connection until it closes or is handed over.
func (s *h1Server) serve(rwc net.Conn) {
	if !s.life.hold(rwc) {
		return
	}
	defer s.life.release(rwc)
	ctx, cancel := context.WithCancel(s.life.ctx)
	c := &h1sConn{s: s, rwc: rwc, ctx: ctx, remote: rwc.RemoteAddr().String(), done: make(chan *h1sResponse, 1)}
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		cancel()
		rwc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.br = h1sReaders.Get().(*bufio.Reader)
	c.br.Reset(rwc)
	c.bw = h1sWriters.Get().(*bufio.Writer)
	c.bw.Reset(rwc)
	handed := c.serve()
	cancel()
	if c.work != nil {
		close(c.work)
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if !handed {
		rwc.Close()
	}
	if c.last != nil && c.last.body != nil {
		// Ends the reads of a body left unread (a hedge's copy may still
		// read it), now that they fail, before its reader is reused.
		c.last.body.r.Close()
	}
	c.br.Reset(nil)
	h1sReaders.Put(c.br)
	c.bw.Reset(nil)
	h1sWriters.Put(c.bw)
}

// drain closes the connections waiting for a request and makes the
// others close after their answer.
func (s *h1Server) drain() {
	s.mu.Lock()
	s.draining.Store(true)
	for c := range s.conns {
		if c.peeking.Load() {
			c.rwc.SetReadDeadline(aLongTimeAgo)
		}
	}
	s.mu.Unlock()
}

// aLongTimeAgo is a read deadline that ends a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// h1sConn is one client connection.
type h1sConn struct {
	s      *h1Server
	rwc    net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer // written by the worker only
	ctx    context.Context
	remote string

	work    chan *h1sResponse // to the worker; nil until the first request
	done    chan *h1sResponse // from the worker: the answer is written
	peeking atomic.Bool       // reading ahead or waiting for a request: drain may end the read
	head    []byte            // the request's head as read, for a handover
	pend    []byte            // the body held before the head is written
	post    bool              // the last request was a POST
	last    *h1sResponse      // the last request dispatched

	// Of requests answered by the reading goroutine (answerInline):
	inflight atomic.Pointer[h1sResponse] // the request being answered
	watch    inlineWatch
}

// serve reads and dispatches requests in order until the connection ends,
// and reports whether it was handed to net/http.
func (c *h1sConn) serve() (handed bool) {
	// The first request's head has h1sHeaderTimeout from the connection's
	// start, as net/http's; later ones from their first byte (readRequest).
	c.rwc.SetReadDeadline(time.Now().Add(h1sHeaderTimeout))
	deadline := true
	for {
		if c.post {
			// RFC 9112 2.2: a client may send a CRLF after a POST's body.
			p, _ := c.br.Peek(min(c.br.Buffered(), 4))
			c.br.Discard(leadingCRLF(p))
		}
		req, err := c.readRequest(&deadline)
		if errors.Is(err, errHandover) {
			c.handOver()
			return true
		}
		if err != nil {
			return false // EOF, reset, the head's timeout: closed silently, as net/http does
		}
		if deadline {
			c.rwc.SetReadDeadline(time.Time{})
			deadline = false
		}
		c.post = req.Method == "POST"
		c.s.served.Add(1)
		w := c.newResponse(req)
		if w.body == nil && c.br.Buffered() == 0 {
			if !c.answerInline(w) {
				return false
			}
			continue
		}
		if !c.dispatch(w) {
			return false
		}
		var answered *h1sResponse
		if w.body != nil {
			select {
			case <-w.body.eof:
			case answered = <-c.done:
				if answered.closeConn {
					return false
				}
				if !c.discardBody(w) {
					c.linger()
					return false
				}
			}
		}
		if answered == nil {
			// Read ahead while the worker answers: the next request's first
			// bytes, or the client going away, which cancels the request.
			c.peeking.Store(true)
			if c.s.draining.Load() {
				<-c.done
				return false
			}
			_, err = c.br.Peek(1)
			c.peeking.Store(false)
			if err != nil && !c.s.draining.Load() {
				w.cancel() // the client went away; not drain's deadline
			}
			answered = <-c.done
			if err != nil {
				return false
			}
		}
		if answered.closeConn || c.s.draining.Load() {
			return false
		}
	}
}

// answerInline answers w, a request without body after which the client
// sent nothing yet, on the reading goroutine, and reports whether the
// connection may serve another request. Nobody reads ahead meanwhile, so
// a client going away would go unnoticed: when the answer takes longer
// than h1sWatchAfter, a goroutine reads ahead as the reading goroutine
// does while the worker answers.
func (c *h1sConn) answerInline(w *h1sResponse) bool {
	c.last = w
	c.inflight.Store(w)
	if c.watch.readAhead == nil {
		c.watch = inlineWatch{life: c.s.life, readAhead: c.readAhead}
	}
	// A read ahead ends at the next request's first bytes, the client
	// going away, or drain.
	if c.watch.run(func() { c.answer(w) }) != nil {
		return false
	}
	return !w.closeConn && !c.s.draining.Load()
}

// readAhead waits for the next request's first bytes while the request
// answered inline runs, and cancels it if the client goes away first.
func (c *h1sConn) readAhead() error {
	w := c.inflight.Load()
	c.peeking.Store(true)
	err := error(net.ErrClosed)
	if !c.s.draining.Load() {
		_, err = c.br.Peek(1)
	}
	c.peeking.Store(false)
	if err != nil && !c.s.draining.Load() {
		w.cancel() // the client went away; not drain's deadline
	}
	return err
}

// inlineWatch runs a request's answer on the goroutine that reads the
// connection (or stream), saving the hand-off to a worker and back. Nobody
// reads ahead meanwhile, which is how the end of the connection is noticed
// and the request cancelled: when the answer takes longer than
// h1sWatchAfter, readAhead runs in a goroutine of its own.
type inlineWatch struct {
	life      *lifecycle
	readAhead func() error
	timer     *time.Timer
	done      chan error // readAhead's result, once it ran
}

// run runs answer and returns readAhead's error if readAhead ran, after
// it ended.
func (iw *inlineWatch) run(answer func()) error {
	if iw.timer == nil {
		iw.done = make(chan error, 1)
		iw.timer = time.AfterFunc(h1sWatchAfter, iw.start)
	} else {
		iw.timer.Reset(h1sWatchAfter)
	}
	answer()
	if iw.timer.Stop() {
		return nil
	}
	return <-iw.done
}

func (iw *inlineWatch) start() {
	read := func() { iw.done <- iw.readAhead() }
	if !iw.life.goroutine(read) {
		read() // the manager is closing, and so the connection: the read ends
	}
}

// dispatch hands w to the worker, starting it for the first request.
func (c *h1sConn) dispatch(w *h1sResponse) bool {
	if c.work == nil {
		c.work = make(chan *h1sResponse, 1)
		work := c.work
		c.s.workers.Add(1)
		if !c.s.life.goroutine(func() {
			for w := range work {
				c.answer(w)
				c.done <- w
			}
		}) {
			c.work = nil
			w.cancel()
			return false
		}
	}
	c.last = w
	c.work <- w
	return true
}

// readRequest reads the next request's head and parses it. Requests the
// lean server does not serve return errHandover with the head still in
// c.head and whatever follows it in c.br.
func (c *h1sConn) readRequest(deadline *bool) (*http.Request, error) {
	c.peeking.Store(true)
	if c.s.draining.Load() {
		return nil, net.ErrClosed
	}
	_, err := c.br.Peek(1)
	c.peeking.Store(false)
	if err != nil {
		return nil, err
	}
	if c.s.draining.Load() {
		return nil, net.ErrClosed
	}
	n := headLen(c.br)
	for n < 0 {
		if c.br.Buffered() == c.br.Size() {
			c.head = c.head[:0]
			return nil, errHandover // longer than the lean server reads
		}
		if !*deadline {
			c.rwc.SetReadDeadline(time.Now().Add(h1sHeaderTimeout))
			*deadline = true
		}
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			return nil, err
		}
		n = headLen(c.br)
	}
	head, _ := c.br.Peek(n)
	if bytes.HasPrefix(head, []byte("PRI ")) {
		c.head = c.head[:0]
		return nil, errHandover // h2c with prior knowledge
	}
	c.head = append(c.head[:0], head...)
	buffered := c.br.Buffered()
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return nil, c.reject(err)
	}
	if !leanRequest(req, hasHost(c.head)) {
		// net/http parses it again and answers it (400, 417, 505) or
		// serves it (upgrades, CONNECT): the head from c.head, what
		// follows it from c.br.
		if read := buffered - c.br.Buffered(); read < n {
			c.br.Discard(n - read)
		}
		return nil, errHandover
	}
	return req, nil
}

// reject answers a request head http.ReadRequest refused as net/http's
// server does, and returns an error that ends the connection. It is not
// handed over: net/http would first wait for the 14 bytes of an h2c
// preface, which a short malformed request may never send.
func (c *h1sConn) reject(err error) error {
	const headers = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	if strings.HasPrefix(err.Error(), "unsupported transfer encoding") {
		c.bw.WriteString("HTTP/1.1 501 Not Implemented" + headers + "Unsupported transfer encoding")
	} else {
		c.bw.WriteString("HTTP/1.1 400 Bad Request" + headers + "400 Bad Request")
	}
	c.bw.Flush()
	return fmt.Errorf("malformed request: %w", err)
}

// headLen is the length of the request head buffered in br: its first
// line and the header fields through the empty line that ends them (what
// http.ReadRequest reads), or -1 when not all of it is buffered.
func headLen(br *bufio.Reader) int {
	b, _ := br.Peek(br.Buffered())
	i := bytes.IndexByte(b, '\n') + 1
	if i == 0 {
		return -1
	}
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		if j == 0 || j == 1 && b[i] == '\r' {
			return i + j + 1
		}
		i += j + 1
	}
}

// hasHost reports whether a request head has a Host field, which
// http.ReadRequest takes out of the header.
func hasHost(head []byte) bool {
	i := bytes.IndexByte(head, '\n') + 1
	for i > 0 && i < len(head) {
		if len(head)-i >= 5 && bytes.EqualFold(head[i:i+5], []byte("host:")) {
			return true
		}
		i += bytes.IndexByte(head[i:], '\n') + 1
	}
	return false
}

func leadingCRLF(p []byte) int {
	n := 0
	for n < len(p) && (p[n] == '\r' || p[n] == '\n') {
		n++
	}
	return n
}

// leanRequest reports whether the lean server serves req, whose head has
// a Host field or not: an HTTP/1.x request in origin form that net/http's
// server would take (its checks after parsing) and that asks for no
// upgrade.
func leanRequest(req *http.Request, host bool) bool {
	if req.ProtoMajor != 1 || req.Method == "CONNECT" || req.Method == "PRI" || req.URL.Host != "" {
		return false
	}
	h := req.Header
	if _, up := h["Upgrade"]; up {
		return false
	}
	if req.ProtoMinor >= 1 && !host || !httpguts.ValidHostHeader(req.Host) {
		return false
	}
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	if e := h["Expect"]; len(e) > 0 && e[0] != "" {
		return req.ProtoMinor >= 1 && req.ContentLength != 0 && httpguts.HeaderValuesContainsToken(e[:1], "100-continue")
	}
	return true
}

// handOver gives the connection, with the bytes read of it, to the
// http.Server, or closes it once that is gone.
func (c *h1sConn) handOver() {
	rest, _ := c.br.Peek(c.br.Buffered())
	prefix := make([]byte, 0, len(c.head)+len(rest))
	prefix = append(append(prefix, c.head...), rest...)
	var conn net.Conn = c.rwc
	if len(prefix) > 0 {
		conn = &prefixConn{Conn: c.rwc, prefix: prefix}
	}
	c.rwc.SetReadDeadline(time.Time{})
	if !c.s.handover.push(conn) {
		conn.Close()
	}
}

// newResponse prepares the request as the http.Server would and returns
// its answer's writer.
func (c *h1sConn) newResponse(req *http.Request) *h1sResponse {
	w := &h1sResponse{c: c, req: req, header: make(http.Header), contentLength: -1}
	req.Header.Del("Host")
	req.RemoteAddr = c.remote
	var ctx context.Context
	ctx, w.cancel = context.WithCancel(c.ctx)
	if req.Body != nil && req.Body != http.NoBody {
		w.body = &h1sBody{r: req.Body, w: w, eof: make(chan struct{})}
		if e := req.Header["Expect"]; len(e) > 0 && e[0] != "" { // 100-continue (leanRequest)
			w.body.expects = true
			w.body.pending.Store(true)
		}
		req.Body = w.body
	}
	w.is11 = req.ProtoAtLeast(1, 1)
	w.isHEAD = req.Method == "HEAD"
	conn := req.Header["Connection"]
	w.wantsClose = req.Close
	w.wants10KeepAlive = !w.is11 && httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	w.req = req.WithContext(ctx)
	return w
}

// answer runs the handler for w's request and finishes its answer. A
// handler that panics (http.ErrAbortHandler: the answer broke) has its
// connection closed after what was written of the answer, as net/http
// does.
func (c *h1sConn) answer(w *h1sResponse) {
	defer func() {
		w.cancel()
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.in.errorLog.Printf("http: panic serving %v: %v\n%s", c.remote, p, buf)
			}
			w.closeConn = true
			c.bw.Flush()
			c.rwc.Close()
		}
	}()
	c.s.in.ServeHTTP(w, w.req)
	w.finish()
}

// discardBody reads away what the handler left of the request body and
// reports whether the connection may serve another request.
func (c *h1sConn) discardBody(w *h1sResponse) bool {
	b := w.body
	if b.sawEOF.Load() {
		return true
	}
	if cl := w.req.ContentLength; cl >= 0 && cl-b.n.Load() > h1sMaxDiscard {
		return false
	}
	n, err := io.CopyN(io.Discard, b.r, h1sMaxDiscard+1)
	return err == io.EOF && n <= h1sMaxDiscard
}

// linger closes the connection for writing and waits, briefly, for the
// client to close it, so that its unread request body does not make the
// close a reset that could destroy the answer on its way.
func (c *h1sConn) linger() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		c.rwc.SetReadDeadline(time.Now().Add(h1sLingerTimeout))
		io.Copy(io.Discard, c.rwc)
	}
}

// h1sBody is a request's body: it sends 100 Continue on its first read
// when the client expects one, and tells the connection when it is read
// to its end.
type h1sBody struct {
	r       io.ReadCloser // net/http's body, which serializes its reads
	w       *h1sResponse
	expects bool        // the client sent Expect: 100-continue
	pending atomic.Bool // and no 100 Continue or answer was sent yet; set under w.mu
	n       atomic.Int64
	sawEOF  atomic.Bool
	eof     chan struct{} // closed once sawEOF
}

func (b *h1sBody) Read(p []byte) (int, error) {
	b.w.writeContinue()
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	if err == io.EOF && !b.sawEOF.Swap(true) {
		close(b.eof)
	}
	return n, err
}

// Close does nothing: the connection reads away what is left after the
// handler, as net/http does for the body it gives a handler.
func (b *h1sBody) Close() error { return nil }

// h1sResponse is the http.ResponseWriter of one request. The head is
// written to the connection's buffer at WriteHeader, all but the fields
// that depend on the body (Content-Length the server computes,
// Content-Type it sniffs, Transfer-Encoding, Connection), which follow
// when the first bytes go out: at a Flush, once more than h1sChunkAfter
// bytes of body were written, or when the handler returns.
type h1sResponse struct {
	c      *h1sConn
	req    *http.Request
	body   *h1sBody // nil for none
	cancel context.CancelFunc
	header http.Header

	mu sync.Mutex // orders a 100 Continue from the body's reader with the answer's head

	wroteHeader, committed bool
	status                 int
	is11, isHEAD           bool
	wantsClose             bool
	wants10KeepAlive       bool
	contentLength          int64 // -1 when unknown
	written                int64
	chunking               bool
	closeConn              bool // close the connection after the answer

	// Of the handler's header at WriteHeader:
	hasTE, identity, hasType, hasEncoding, hasDate bool
	trailers                                       []string // declared
	anyTrailer                                     bool
	connection                                     []string
}

var _ http.Flusher = (*h1sResponse)(nil)

func (w *h1sResponse) Header() http.Header { return w.header }

// EnableFullDuplex is what http.ResponseController calls: the lean server
// always lets a handler read the body while it answers.
func (w *h1sResponse) EnableFullDuplex() error { return nil }

// writeContinue sends 100 Continue before the body's first read, unless
// an answer was begun.
func (w *h1sResponse) writeContinue() {
	if !w.body.pending.Load() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.body.pending.Load() {
		w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		w.c.bw.Flush()
		w.body.pending.Store(false)
	}
}

// noContinue stops a 100 Continue from being sent once the handler
// answers (or sends its own).
func (w *h1sResponse) noContinue() {
	if w.body != nil && w.body.pending.Load() {
		w.mu.Lock()
		w.body.pending.Store(false)
		w.mu.Unlock()
	}
}

// excludeOnHead are the handler's fields written later (Connection), or
// not at all (Transfer-Encoding: the server frames the body itself).
var excludeOnHead = map[string]bool{"Transfer-Encoding": true, "Connection": true}

func (w *h1sResponse) WriteHeader(code int) {
	if w.wroteHeader {
		w.c.s.in.errorLog.Printf("http: superfluous response.WriteHeader call (lean server)")
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	bw := w.c.bw
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		if code == http.StatusContinue {
			w.noContinue()
		}
		w.mu.Lock() // a 103 may come while the body's reader sends 100
		writeStatusLine(bw, w.is11, code)
		w.header.WriteSubset(bw, excludedNoBody)
		bw.WriteString("\r\n")
		bw.Flush()
		w.mu.Unlock()
		return
	}
	w.noContinue()
	w.wroteHeader = true
	w.status = code
	h := w.header
	exclude, own := excludeOnHead, false
	te := h.Get("Transfer-Encoding")
	w.hasTE, w.identity = te != "", te == "identity"
	cl := h["Content-Length"]
	if len(cl) > 0 {
		v, err := strconv.ParseInt(cl[0], 10, 64)
		switch {
		case err != nil || v < 0:
			w.c.s.in.errorLog.Printf("http: invalid Content-Length of %q", cl[0])
		case w.hasTE && !w.identity:
			w.c.s.in.errorLog.Printf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", te, v)
		default:
			w.contentLength = v
		}
	}
	if len(cl) > 0 && (w.contentLength == -1 || !bodyAllowed(code)) {
		exclude, own = maps.Clone(excludeOnHead), true
		exclude["Content-Length"] = true
	}
	_, w.hasType = h["Content-Type"]
	w.hasEncoding = h.Get("Content-Encoding") != ""
	_, w.hasDate = h["Date"]
	w.connection = h["Connection"]
	for _, v := range h["Trailer"] {
		w.anyTrailer = true
		foreachElement(v, func(k string) {
			if k = http.CanonicalHeaderKey(k); httpguts.ValidTrailerHeader(k) {
				w.trailers = append(w.trailers, k)
			}
		})
	}
	for k := range h {
		prefixed := strings.HasPrefix(k, http.TrailerPrefix)
		if prefixed || code == http.StatusNotModified && k == "Content-Type" {
			if !own {
				exclude, own = maps.Clone(excludeOnHead), true
			}
			exclude[k] = true
			w.anyTrailer = w.anyTrailer || prefixed
		}
	}
	writeStatusLine(bw, w.is11, code)
	h.WriteSubset(bw, exclude)
}

var excludedNoBody = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}

// commit writes the rest of the head and p, the body held so far; done
// says the handler returned, so that p is all of the body.
func (w *h1sResponse) commit(p []byte, done bool) {
	w.committed = true
	allowed := bodyAllowed(w.status)
	hasCL := w.contentLength != -1
	autoCL := done && !w.anyTrailer && !w.hasTE && allowed && !hasCL && (!w.isHEAD || len(p) > 0)
	if autoCL {
		w.contentLength, hasCL = int64(len(p)), true
	}
	keepAlive10 := false
	if w.wants10KeepAlive && (w.isHEAD || hasCL || !allowed) {
		keepAlive10 = len(w.connection) == 0
	} else if !w.is11 || w.wantsClose {
		w.closeConn = true
	}
	if httpguts.HeaderValuesContainsToken(w.connection, "close") {
		w.closeConn = true
	}
	if w.body != nil && w.body.expects && !w.body.sawEOF.Load() {
		// Whether the body follows is unknown: close, as net/http does.
		w.closeConn = true
	}
	switch {
	case w.isHEAD || !allowed || hasCL:
	case w.is11 && w.identity:
		w.closeConn = true
	case w.is11:
		w.chunking = true
	default:
		w.closeConn = true
	}
	// The fields the server adds, in net/http's order.
	bw := w.c.bw
	if !w.hasDate {
		bw.WriteString("Date: ")
		bw.Write(time.Now().UTC().AppendFormat(bw.AvailableBuffer(), http.TimeFormat))
		bw.WriteString("\r\n")
	}
	if autoCL {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), w.contentLength, 10))
		bw.WriteString("\r\n")
	}
	if allowed && !w.hasType && !w.hasEncoding && !w.hasTE && len(p) > 0 {
		bw.WriteString("Content-Type: ")
		bw.WriteString(http.DetectContentType(p))
		bw.WriteString("\r\n")
	}
	switch {
	case w.closeConn && !httpguts.HeaderValuesContainsToken(w.connection, "close"):
		if w.is11 {
			bw.WriteString("Connection: close\r\n")
		}
	case keepAlive10:
		bw.WriteString("Connection: keep-alive\r\n")
	default:
		for _, v := range w.connection {
			bw.WriteString("Connection: ")
			bw.WriteString(headerValue(v))
			bw.WriteString("\r\n")
		}
	}
	if w.chunking {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	w.writeBody(p)
}

// headerNewlines is http.Header.Write's own replacer, made once rather
// than per value written.
var headerNewlines = strings.NewReplacer("\n", " ", "\r", " ")

// headerValue is v as http.Header.Write writes a value.
func headerValue(v string) string {
	return strings.TrimSpace(headerNewlines.Replace(v))
}

func (w *h1sResponse) writeBody(p []byte) error {
	if len(p) == 0 || w.isHEAD || !bodyAllowed(w.status) {
		return nil
	}
	bw := w.c.bw
	if w.chunking {
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, err := bw.WriteString("\r\n")
		return err
	}
	_, err := bw.Write(p)
	return err
}

func (w *h1sResponse) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if len(w.c.pend)+len(p) <= h1sChunkAfter {
			w.c.pend = append(w.c.pend, p...)
			return len(p), nil
		}
		w.commit(w.c.pend, false)
		w.c.pend = w.c.pend[:0]
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends what was written so far: the head, chunked when its length
// is unknown.
func (w *h1sResponse) Flush() {
	w.FlushError()
}

// FlushError is Flush for http.ResponseController.
func (w *h1sResponse) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(w.c.pend, false)
		w.c.pend = w.c.pend[:0]
	}
	return w.c.bw.Flush()
}

// finish ends the answer once the handler returned, and writes it out.
func (w *h1sResponse) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(w.c.pend, true)
		w.c.pend = w.c.pend[:0]
	}
	bw := w.c.bw
	if w.chunking {
		bw.WriteString("0\r\n")
		w.finalTrailers().Write(bw)
		bw.WriteString("\r\n")
	}
	if !w.isHEAD && w.contentLength != -1 && bodyAllowed(w.status) && w.contentLength != w.written {
		w.closeConn = true // the handler wrote less than its Content-Length
	}
	if bw.Flush() != nil {
		w.closeConn = true
	}
	if w.closeConn {
		w.c.rwc.Close()
	}
}

// finalTrailers are the trailers the handler declared (Trailer) or set
// with http.TrailerPrefix.
func (w *h1sResponse) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.header {
		if kk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		for _, v := range w.header[k] {
			if t == nil {
				t = make(http.Header)
			}
			t.Add(k, v)
		}
	}
	return t
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == 204 || status == 304)
}

func writeStatusLine(bw *bufio.Writer, is11 bool, code int) {
	if is11 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	if text := http.StatusText(code); text != "" {
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
		bw.WriteByte(' ')
		bw.WriteString(text)
		bw.WriteString("\r\n")
	} else {
		fmt.Fprintf(bw, "%03d status code %d\r\n", code, code)
	}
}

// foreachElement calls fn for each non-empty element of a comma-separated
// field value.
func foreachElement(v string, fn func(string)) {
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fn(f)
		}
	}
}

// prefixConn is a connection whose first bytes were read already.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http close a TCP connection for writing first.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
