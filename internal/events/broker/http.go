package broker

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/observe/tracectx"
)

// ErrBadLastEventID is returned (wrapped, with the value) for a Last-Event-ID
// that is not an inbox seq; 400.
var ErrBadLastEventID = errors.New("bad Last-Event-ID")

// apiError is an event API error answer: apitype's error body, its status
// from apitype's table, and how long a client should wait before retrying.
type apiError struct {
	apitype.ErrorDetail
	Status     int
	RetryAfter int // seconds; set for 429 and 503
}

// errorTable maps the broker's errors to their codes and Retry-After;
// anything else is Internal.
var errorTable = []struct {
	err  error
	code string
	wait int
}{
	{cloudevent.ErrMalformed, apitype.CodeMalformedEvent, 0},
	{cloudevent.ErrTooLarge, apitype.CodeEventTooLarge, 0},
	{cloudevent.ErrUnsupportedFormat, apitype.CodeUnsupportedFormat, 0},
	{events.ErrBadSubject, apitype.CodeBadSubject, 0},
	{ErrBadLastEventID, apitype.CodeBadLastEventID, 0},
	{ErrWrongKind, apitype.CodeWrongKind, 0},
	{ErrNoConsumer, apitype.CodeNoConsumer, 0},
	{ErrBusy, apitype.CodeBusy, 1},
	{ErrTooManyClientSubscriptions, apitype.CodeTooManyClientSubs, 5},
	{ErrTooManySubscriptions, apitype.CodeTooManySubs, 5},
	{ErrTooManyInterests, apitype.CodeTooManyInterests, 60},
	{ErrBackPressure, apitype.CodeBackPressure, 5},
	{ErrConsumerBehind, apitype.CodeConsumerBehind, 5},
	{ErrUnauthenticated, apitype.CodeUnauthorized, 0},
	{ErrForbidden, apitype.CodeForbidden, 0},
	{ErrNotWebSocket, apitype.CodeInvalid, 0},
}

func toAPIError(err error) apiError {
	a := apiError{ErrorDetail: apitype.ErrorDetail{Code: apitype.CodeInternal, Message: err.Error()}}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			a.Code, a.RetryAfter = e.code, e.wait
			break
		}
	}
	a.Status = apitype.StatusOf(a.Code)
	return a
}

func writeError(w http.ResponseWriter, err error) {
	a := toAPIError(err)
	if a.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(a.RetryAfter))
	}
	apitype.WriteError(w, a.ErrorDetail)
}

// ErrWrongKind is returned (wrapped, with what to use instead) for a topic
// request to a name that is a queue, or the reverse; 409.
var ErrWrongKind = errors.New("wrong kind of address")

// Handler is the event API served at the site's event address. A name is a
// topic or a queue, never both: /v1/events/{name} resolves it (resolve), and
// /v1/topics/{name} and /v1/queues/{name} refuse a name known to be of the
// other kind rather than publish where nobody listens.
func (b *Broker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/topics/{name}", func(w http.ResponseWriter, r *http.Request) { b.servePublish(w, r, events.Topic, true) })
	mux.HandleFunc("POST /v1/queues/{name}", func(w http.ResponseWriter, r *http.Request) { b.servePublish(w, r, events.Queue, true) })
	mux.HandleFunc("POST /v1/events/{name}", func(w http.ResponseWriter, r *http.Request) {
		b.servePublish(w, r, b.resolve(r.PathValue("name")), false)
	})
	// Publish streams (pubstream.go): WebSockets carrying batches.
	mux.HandleFunc("GET /v1/topics/{name}/publish", func(w http.ResponseWriter, r *http.Request) { b.servePublishStream(w, r, events.Topic, true) })
	mux.HandleFunc("GET /v1/queues/{name}/publish", func(w http.ResponseWriter, r *http.Request) { b.servePublishStream(w, r, events.Queue, true) })
	mux.HandleFunc("GET /v1/events/{name}/publish", func(w http.ResponseWriter, r *http.Request) {
		b.servePublishStream(w, r, b.resolve(r.PathValue("name")), false)
	})
	mux.HandleFunc("GET /v1/topics/{name}/events", func(w http.ResponseWriter, r *http.Request) { b.serveEvents(w, r, events.Topic, true) })
	mux.HandleFunc("GET /v1/queues/{name}/events", func(w http.ResponseWriter, r *http.Request) { b.serveEvents(w, r, events.Queue, true) })
	mux.HandleFunc("GET /v1/events/{name}", func(w http.ResponseWriter, r *http.Request) {
		b.serveEvents(w, r, b.resolve(r.PathValue("name")), false)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apitype.WriteError(w, apitype.ErrorDetail{Code: apitype.CodeNotFound, Message: fmt.Sprintf(
			"the event API has no %s %s: publish with POST /v1/events/NAME, subscribe with GET /v1/events/NAME", r.Method, r.URL.Path)})
	})
	return mux
}

// configuredKind is the kind of name if a Topic or Queue of that name is
// configured at this site.
func (b *Broker) configuredKind(name string) (events.Kind, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.queues[name]; ok {
		return events.Queue, true
	}
	if _, ok := b.topics[name]; ok {
		return events.Topic, true
	}
	return 0, false
}

// resolve is the kind of a name used without one: a queue if a Queue of
// that name is configured here, or, with neither a Queue nor a Topic here,
// if some reachable site consumes it as a queue and none subscribes to it
// as a topic; else a topic. So `weft publish jobs` reaches the consumers of
// the queue jobs without --queue.
func (b *Broker) resolve(name string) events.Kind {
	if k, ok := b.configuredKind(name); ok {
		return k
	}
	t := b.cfg.Net.Table()
	if t == nil {
		return events.Topic
	}
	queue := false
	for _, rec := range t.Records() {
		for _, in := range rec.Interests {
			k, pattern, ok := events.ParseInterest(in)
			switch {
			case !ok || !events.Match(pattern, name):
			case k == events.Topic:
				return events.Topic
			case k == events.Queue:
				queue = true
			}
		}
	}
	if queue {
		return events.Queue
	}
	return events.Topic
}

// checkKind refuses a request that names its kind (explicit) for a name
// configured here as the other kind.
func (b *Broker) checkKind(name string, kind events.Kind, explicit bool) error {
	if !explicit {
		return nil
	}
	k, ok := b.configuredKind(name)
	if !ok || k == kind {
		return nil
	}
	is, path := "queue", "queues"
	if k == events.Topic {
		is, path = "topic", "topics"
	}
	return fmt.Errorf("%w: %q is a %s at this site: use /v1/%s/%s, or /v1/events/%s, which finds the kind itself (`weft publish` and `weft subscribe` do)",
		ErrWrongKind, name, is, path, name, name)
}

// publishAllowed checks the name, the credential and the kind of a publish
// request or stream, and answers a refusal itself.
func (b *Broker) publishAllowed(w http.ResponseWriter, r *http.Request, kind events.Kind, explicit bool) (name string, ok bool) {
	name = r.PathValue("name")
	if err := events.ValidateSubject(name); err != nil {
		writeError(w, err)
		return "", false
	}
	if !b.authorize(w, r, Publish, name) {
		return "", false
	}
	if err := b.checkKind(name, kind, explicit); err != nil {
		writeError(w, err)
		return "", false
	}
	return name, true
}

func (b *Broker) servePublish(w http.ResponseWriter, r *http.Request, kind events.Kind, explicit bool) {
	name, ok := b.publishAllowed(w, r, kind, explicit)
	if !ok {
		return
	}
	select {
	case b.inflight <- struct{}{}:
		defer func() { <-b.inflight }()
	default:
		b.m.refused.WithLabelValues(limitPublishes).Inc()
		writeError(w, fmt.Errorf("%w: the limit is %d; retry after a moment", ErrBusy, cap(b.inflight)))
		return
	}
	evs, err := cloudevent.Decode(r, b.cfg.MaxEventSize)
	if err == nil {
		err = b.Publish(b.requestContext(r), kind, name, evs)
	}
	if errors.Is(err, ErrNoConsumer) {
		err = fmt.Errorf("%w: queue %q: start a consumer first (`weft subscribe %s`, or `weft subscription create NAME --queue %s --sink URL`)", err, name, name, name)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	// The kind it went to, for a client that let the site resolve it.
	w.Header().Set("Weft-Kind", kindName(kind))
	w.WriteHeader(http.StatusAccepted)
}

// kindName is "topic" or "queue".
func kindName(k events.Kind) string {
	if k == events.Queue {
		return "queue"
	}
	return "topic"
}

// serveEvents streams the events matching the name (a pattern) to the
// caller: as Server-Sent Events, or, on a WebSocket upgrade, as text
// messages. The subscription's interest lasts as long as the request. A
// reconnecting client resumes a persisted topic after the inbox seq it
// passes as Last-Event-ID, in the header or, since a browser's WebSocket
// cannot set headers, in the lastEventId query parameter.
func (b *Broker) serveEvents(w http.ResponseWriter, r *http.Request, kind events.Kind, explicit bool) {
	pattern := r.PathValue("name")
	if err := events.ValidatePattern(pattern); err != nil {
		writeError(w, err)
		return
	}
	// A queue's consumer subscribes too: consuming is subscribing.
	if !b.authorize(w, r, Subscribe, pattern) {
		return
	}
	r, release := b.whileValid(r)
	defer release()
	if err := b.checkKind(pattern, kind, explicit); err != nil {
		writeError(w, err)
		return
	}
	var last uint64
	resume := false
	if v := cmp.Or(r.Header.Get("Last-Event-ID"), r.URL.Query().Get("lastEventId")); v != "" && kind == events.Topic {
		var err error
		if last, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, fmt.Errorf("%w: %q is not an event seq", ErrBadLastEventID, v))
			return
		}
		resume = true
	}
	if isWebSocket(r) {
		b.serveWebSocket(w, r, kind, pattern, last, resume)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, errors.New("streaming is not supported by this connection"))
		return
	}
	s, err := b.subscribe(kind, pattern, clientAddr(r.RemoteAddr))
	if err != nil {
		writeError(w, err)
		return
	}
	defer b.unsubscribe(s)
	w.Header().Set("Weft-Kind", kindName(kind))
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// The comment tells the client that the interest is registered.
	fmt.Fprint(w, ": subscribed\n\n")
	fl.Flush()
	b.stream(r.Context(), s, last, resume, &sseOut{w: bufio.NewWriterSize(w, 32<<10), fl: fl})
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// serveWebSocket streams over a WebSocket. Each message is the structured
// CloudEvent JSON; an event from the inbox carries its seq, for
// lastEventId, as the extension attribute weftseq.
func (b *Broker) serveWebSocket(w http.ResponseWriter, r *http.Request, kind events.Kind, pattern string, last uint64, resume bool) {
	// Subscribed before the upgrade: once the client sees it, the
	// interest is registered.
	s, err := b.subscribe(kind, pattern, clientAddr(r.RemoteAddr))
	if err != nil {
		writeError(w, err)
		return
	}
	defer b.unsubscribe(s)
	// The default options refuse a browser's request from another origin.
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	defer c.CloseNow()
	// The client sends nothing: CloseRead answers pings and its close, and
	// ends ctx when the client goes.
	ctx := c.CloseRead(r.Context())
	b.stream(ctx, s, last, resume, &wsOut{c: c, ctx: ctx})
	c.Close(websocket.StatusGoingAway, "")
}

// streamOut is where a live subscription writes: SSE or a WebSocket.
type streamOut interface {
	// send writes one event; seq is its inbox seq when it was stored, else 0.
	send(seq uint64, event []byte) error
	// flush sends what send buffered; stream calls it after each burst.
	flush() error
	// keepalive keeps an idle stream open through proxies.
	keepalive() error
	// name is the kind of stream, for a delivery's span.
	name() string
}

// stream runs subscription s into out until ctx or the broker ends or a
// write fails: first, when resume is set, the stored events after last (a
// persisted topic's backlog), then live ones. s is registered before the
// backlog is read, so nothing falls in between; what comes twice is skipped
// by seq.
func (b *Broker) stream(ctx context.Context, s *subscriber, last uint64, resume bool, out streamOut) {
	pend := &pending{limit: streamPendingEvents, wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
	if s.kind == events.Queue {
		pend.limit = queueStreamPending
	}
	pctx, stop := context.WithCancel(ctx)
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		b.pump(pctx, s, pend)
	}()
	if s.kind == events.Topic {
		// From now on deliveries skip ch; the pump moves what came before.
		s.pend.Store(pend)
	}
	defer func() {
		stop()
		<-pumped
	}()
	// The client has the stored events in (read.from, read.to]: those it
	// had when it resumed and those read for it from the inbox since. Live
	// deliveries come in no strict seq order, so only this range, not
	// everything below its top, is known to be written.
	read := seqRange{to: last, set: resume}
	send := func(seq uint64, subject string, event []byte, t tracectx.Context) error {
		_, span := b.startDeliver(ctx, t, subject, s.kind, out.name(), seq)
		err := out.send(seq, event)
		endSpan(span, err)
		return err
	}
	catchUp := func(from uint64) error {
		from = read.extend(from)
		var err error
		rerr := b.st.ReadIn(from, func(seq uint64, e store.Entry) bool {
			if events.Kind(e.Kind) == s.kind && events.Match(s.pattern, e.Subject) {
				err = send(seq, e.Subject, e.Payload, e.Trace)
			}
			read.to = max(read.to, seq)
			return err == nil
		})
		return cmp.Or(err, rerr, out.flush())
	}
	if resume && catchUp(last) != nil {
		return
	}
	keepalive := b.clock.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	var batch []delivery
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-b.ctx.Done():
			return
		case <-keepalive.C():
			err = out.keepalive()
		case <-s.wake:
			// Stored events that did not fit come from the inbox: those
			// written live since then come twice, with their seq for the
			// client to tell.
			if m := s.missed.Swap(0); m != 0 {
				err = catchUp(m - 1)
			}
		case <-pend.wake:
			// Everything waiting goes out with one flush.
			batch = pend.take(batch)
			for _, d := range batch {
				if !read.has(d.Seq) {
					if err = send(d.Seq, d.Subject, d.JSON, d.trace()); err != nil {
						break
					}
				}
			}
			clear(batch) // the events can go before the next burst comes
			if err == nil {
				err = out.flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// seqRange is a range (from, to] of inbox seqs, empty until set.
type seqRange struct {
	from, to uint64
	set      bool
}

// extend makes the range reach down to from, or to its top when from lies
// above it, so that it stays one range once events after the returned seq
// are added: a catch-up then reads again some that went live, never skips
// one.
func (r *seqRange) extend(from uint64) uint64 {
	switch {
	case !r.set:
		r.from, r.to, r.set = from, from, true
	case from > r.to:
		from = r.to
	case from < r.from:
		r.from = from
	}
	return from
}

func (r *seqRange) has(seq uint64) bool {
	return seq != 0 && r.set && r.from < seq && seq <= r.to
}

// A stream holds up to this much that its client has not read yet: a
// burst waits there, in memory taken only while it does, rather than
// overflowing the subscriber's channel while a write is blocked.
// They are variables so that a test can make a stream overflow cheaply.
var (
	streamPendingEvents = 1 << 16
	streamPendingBytes  = 16 << 20
)

// A queue's consumer holds little: what it holds is taken from the queue,
// and a site whose consumers are slow must show it, so that the queue's
// entries go to consumers elsewhere (queueHighWater).
const queueStreamPending = 256

// pending is what a stream took from its subscriber's channel and has not
// written yet.
type pending struct {
	limit int // events
	mu    sync.Mutex
	q     []delivery
	bytes int
	wake  chan struct{} // holds a token after put
	room  chan struct{} // holds a token after take
}

// pump moves s's deliveries into p until ctx or the broker ends. What does
// not fit: a queue's event waits for room, a topic's stored event is marked
// missed for the stream to read again, a volatile one is dropped, as
// deliverLocal drops for a full channel.
func (b *Broker) pump(ctx context.Context, s *subscriber, p *pending) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.ctx.Done():
			return
		case d := <-s.ch:
			switch {
			case p.put(d):
			case s.kind == events.Queue:
				// A queue's event is this consumer's alone: it waits
				// here, and while it does the channel fills and the
				// queue turns to other consumers.
				for !p.put(d) {
					select {
					case <-ctx.Done():
						return
					case <-p.room:
					}
				}
			case d.Seq != 0:
				s.miss(d.Seq)
			default:
				b.m.drop("slow-consumer", s.kind, d.Subject)
			}
		}
	}
}

func (p *pending) put(d delivery) bool {
	p.mu.Lock()
	ok := len(p.q) < p.limit && p.bytes+len(d.JSON) <= streamPendingBytes
	if ok {
		p.q = append(p.q, d)
		p.bytes += len(d.JSON)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return ok
}

// take returns everything waiting and keeps spare, emptied, for what comes
// next, unless a burst made it large.
func (p *pending) take(spare []delivery) []delivery {
	if cap(spare) > 4096 {
		spare = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.q
	p.q, p.bytes = spare[:0], 0
	select {
	case p.room <- struct{}{}:
	default:
	}
	return q
}

// sseOut writes Server-Sent Events: "id" is the inbox seq of a stored
// event, "data" the event in structured JSON (which holds no newline).
type sseOut struct {
	w   *bufio.Writer
	fl  http.Flusher
	buf []byte
}

func (o *sseOut) send(seq uint64, event []byte) error {
	o.buf = o.buf[:0]
	if seq != 0 {
		o.buf = strconv.AppendUint(append(o.buf, "id: "...), seq, 10)
		o.buf = append(o.buf, '\n')
	}
	o.buf = append(append(append(o.buf, "data: "...), event...), "\n\n"...)
	_, err := o.w.Write(o.buf)
	return err
}

func (o *sseOut) name() string { return "sse" }

func (o *sseOut) flush() error {
	err := o.w.Flush()
	o.fl.Flush()
	return err
}

func (o *sseOut) keepalive() error {
	if _, err := o.w.WriteString(": keepalive\n\n"); err != nil {
		return err
	}
	return o.flush()
}

// wsOut writes one text message per event; each is sent at once, so flush
// has nothing to do.
type wsOut struct {
	c   *websocket.Conn
	ctx context.Context
	buf []byte
}

func (o *wsOut) send(seq uint64, event []byte) error {
	if seq != 0 {
		o.buf = cloudevent.AppendSeq(o.buf[:0], event, seq)
		event = o.buf
	}
	return o.c.Write(o.ctx, websocket.MessageText, event)
}

func (o *wsOut) flush() error { return nil }

func (o *wsOut) name() string { return "websocket" }

func (o *wsOut) keepalive() error {
	ctx, cancel := context.WithTimeout(o.ctx, 10*time.Second)
	defer cancel()
	return o.c.Ping(ctx)
}
