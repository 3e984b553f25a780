package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/service/httpframe"
)

// The connector site's end of framed streams (framed.go): one goroutine
// per stream reads each request's head, hands the request to a goroutine
// of its own that calls the target and writes the answer, and meanwhile
// reads on, so that a stream closed by the ingress cancels the request.

// ServeHTTPFrameStream serves a KindHTTPFrame stream whose last segment is
// this site, as ServeHTTPStream does a KindHTTP one, until the stream ends.
func (m *Manager) ServeHTTPFrameStream(st Stream, h *forward.Header) {
	a := m.httpServed(st, h)
	if a == nil {
		return
	}
	if !m.life.hold(st) {
		st.Reject(forward.RejectNoConnector, fmt.Sprintf("%q: %v", h.Address, ErrClosed))
		return
	}
	defer m.life.release(st)
	if err := st.Confirm(); err != nil {
		st.Close()
		return
	}
	s := &frameServer{m: m, a: a, st: st, first: h.Trace,
		br: bufio.NewReaderSize(st, framedBufSize), bw: bufio.NewWriterSize(st, framedBufSize)}
	s.serve()
	st.Close()
}

// frameServer serves the requests of one stream, one at a time.
type frameServer struct {
	m     *Manager
	a     *address
	st    Stream
	br    *bufio.Reader // read by serve, or by the request body while it is read
	bw    *bufio.Writer // written by the request's goroutine
	first forward.TraceContext
	keep  bool // set by the request's goroutine: the stream takes another request
}

// frameJob is a request for the stream's worker.
type frameJob struct {
	req   *http.Request
	body  *requestBody
	first forward.TraceContext
}

func (s *frameServer) serve() {
	// The stream's requests share one context, cancelled when the stream
	// ends (a request is cancelled by closing its stream), and one worker
	// goroutine that calls the target and writes the answers: a goroutine
	// per request grew its stack anew each time down net/http's client,
	// and a context per request gave the target's transport a new map of
	// children to register in; both were a tenth of the site's CPU.
	ctx, cancel := context.WithCancel(s.m.life.ctx)
	defer cancel()
	var jobs chan frameJob
	done := make(chan struct{})
	defer func() {
		if jobs != nil {
			close(jobs)
		}
	}()
	work := func() {
		for j := range jobs {
			s.handle(j.req, j.body, j.first)
			done <- struct{}{}
		}
	}
	// A request without body, with nothing after it on the stream, is
	// served on this goroutine, without the hand-off to the worker and
	// back; the read ahead that notices the stream closing (and cancels
	// the request) starts only if it runs long.
	watch := inlineWatch{life: s.m.life, readAhead: func() error {
		_, err := s.br.Peek(1)
		if err != nil {
			cancel()
		}
		return err
	}}
	var buf []byte
	for {
		typ, n, err := httpframe.ReadFrameHeader(s.br)
		if err != nil {
			return // the ingress closed the stream, or it broke
		}
		if typ != httpframe.TypeRequest {
			s.m.cfg.Logger.Debug("framed stream: a frame where a request belongs", "address", s.a.name, "type", typ)
			return
		}
		if buf, err = httpframe.ReadPayload(s.br, n, buf); err != nil {
			return
		}
		req, noBody, err := httpframe.DecodeRequest(buf)
		if err != nil {
			s.m.cfg.Logger.Debug("framed stream: bad request head", "address", s.a.name, "err", err)
			return
		}
		req.URL.Scheme, req.URL.Host = "http", s.a.name
		var body *requestBody
		if noBody {
			req.Body = http.NoBody
		} else {
			body = &requestBody{r: httpframe.NewBodyReader(s.br, req.Trailer), released: make(chan struct{})}
			req.Body = body
		}
		req = req.WithContext(ctx)
		// An upgrade's stream becomes its tunnel, read by the request's
		// goroutine; so is the stream while the body is being read.
		tunnel := req.Header.Get("Upgrade") != ""
		first := s.first
		s.first = forward.TraceContext{}
		if noBody && !tunnel && s.br.Buffered() == 0 {
			if watch.run(func() { s.handle(req, nil, first) }) != nil || !s.keep {
				return
			}
			continue
		}
		if jobs == nil {
			jobs = make(chan frameJob)
			s.m.frameWorkers.Add(1)
			if !s.m.life.goroutine(work) {
				jobs = nil
				return
			}
		}
		jobs <- frameJob{req: req, body: body, first: first}
		if body != nil {
			<-body.released
		}
		if tunnel || (body != nil && !body.clean.Load()) {
			<-done
			return
		}
		// Waits for the next request; the stream closing first cancels
		// this one.
		if _, err := s.br.Peek(1); err != nil {
			cancel()
		}
		<-done
		if !s.keep {
			return
		}
	}
}

// handle sends one request to the target and writes its answer. It keeps
// the stream (s.keep) when the whole request was read.
func (s *frameServer) handle(req *http.Request, body *requestBody, first forward.TraceContext) {
	s.keep = false
	resp, err := s.m.egress(s.a, first, req)
	if err != nil {
		resp = unreachable(req, err)
	}
	defer resp.Body.Close()
	head, err := httpframe.AppendResponse(s.bw.AvailableBuffer(), resp)
	if err != nil {
		resp = unreachable(req, err)
		head, _ = httpframe.AppendResponse(s.bw.AvailableBuffer(), resp)
	}
	s.bw.Write(head)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && s.bw.Flush() == nil {
			s.tunnel(rwc)
		}
		s.st.Close()
		return
	}
	if !s.copyBody(resp) {
		s.st.Close() // the answer broke: the ingress sees it end without its end frame
		return
	}
	if body != nil {
		body.Close()
	}
	// A refused upgrade too ends the stream: serve no longer reads it.
	keep := (body == nil || body.clean.Load()) && req.Header.Get("Upgrade") == ""
	var flags byte
	if keep {
		flags = httpframe.FlagKeep
	}
	if httpframe.NewBodyWriter(s.bw).End(flags, resp.Trailer) != nil || s.bw.Flush() != nil {
		keep = false
	}
	s.keep = keep
	if !keep {
		s.st.Close()
	}
}

// copyBody writes the answer's body as data frames, flushing each piece
// as the target gives it (a streamed answer must not wait in a buffer);
// false if the target's answer or the stream broke. The last piece of a
// body of known length is not flushed: its end frame follows at once, and
// head, body and end go to the link as one write.
func (s *frameServer) copyBody(resp *http.Response) bool {
	pb := proxyBuffers.get()
	defer proxyBuffers.put(pb)
	buf := *pb
	w := httpframe.NewBodyWriter(s.bw)
	var written int64
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false
			}
			written += int64(n)
		}
		if err == io.EOF {
			return true
		}
		if err != nil {
			s.m.cfg.Logger.Debug("framed stream: the target's answer broke", "address", s.a.name, "err", err)
			return false
		}
		if written != resp.ContentLength && s.bw.Flush() != nil {
			return false
		}
	}
}

// tunnel joins the stream and an upgraded connection to the target until
// either ends.
func (s *frameServer) tunnel(rwc io.ReadWriteCloser) {
	up := make(chan struct{})
	copyUp := func() {
		io.Copy(rwc, s.br)
		rwc.Close()
		close(up)
	}
	if !s.m.life.goroutine(copyUp) {
		rwc.Close()
		return
	}
	io.Copy(s.st, rwc)
	s.st.Close()
	rwc.Close()
	<-up
}

// unreachable is the answer when no target could be reached, or its
// answer could not be read: 502 with Weft-Error, which the ingress reads
// as "no answer to pass on".
func unreachable(req *http.Request, err error) *http.Response {
	resp := localAnswer(req, http.StatusBadGateway, HeaderError, unreachableReason(err))
	msg := err.Error() + "\n"
	resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp.Header.Set("Content-Length", fmt.Sprint(len(msg)))
	resp.ContentLength = int64(len(msg))
	resp.Body = io.NopCloser(strings.NewReader(msg))
	return resp
}

// unreachableReason is the Weft-Error value for err, which the ingress
// names in its own 502.
func unreachableReason(err error) string {
	var bad *badAnswerError
	if !errors.As(err, &bad) {
		return "target unreachable"
	}
	// Not the target's address, which the client need not learn; but the
	// error quotes the target's bytes, and a line may be long.
	const most = 200
	msg := []rune(bad.Error())
	if len(msg) > most {
		msg = append(msg[:most], '…')
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, string(msg))
}

// requestBody is a request's body read from its stream. released is
// closed once the body is no longer read: at its end frame, an error, or
// Close; clean says it was read to its end frame.
type requestBody struct {
	r        *httpframe.BodyReader
	mu       sync.Mutex // serializes Read
	closed   atomic.Bool
	clean    atomic.Bool
	once     sync.Once
	released chan struct{}
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.release(true)
	} else if err != nil {
		b.release(false)
	}
	return n, err
}

// Close ends the reading; a body not read to its end leaves the stream
// unusable for another request. It does not wait for a Read in progress.
func (b *requestBody) Close() error {
	b.closed.Store(true)
	b.release(false)
	return nil
}

func (b *requestBody) release(clean bool) {
	b.once.Do(func() {
		b.clean.Store(clean)
		close(b.released)
	})
}
