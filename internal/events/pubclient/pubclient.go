// Package pubclient is the client of a site's publish streams (spec.md in
// internal/events, "Publish streams"): it publishes batches of events over
// one WebSocket, as many in flight as the site's window allows, and hands
// each batch's answer to the caller.
package pubclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/coder/websocket"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/events"
)

// RefusedError is a batch the site refused, with the event API's code.
type RefusedError struct {
	Seq        uint64
	Code       string
	Message    string
	RetryAfter uint64 // seconds; 0: do not retry it as it is
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("batch %d refused (%s): %s", e.Seq, e.Code, e.Message)
}

// APIError is the site's answer to a stream it did not open (401, 403,
// 404, 409, ...).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("the site refused the publish stream: %d %s: %s", e.Status, e.Code, e.Message)
}

// Options configures a publisher.
type Options struct {
	// Authorization is the Authorization header: "Bearer " and an event
	// credential, or "" without one.
	Authorization string
	// OnAnswer is called for each batch, in order, once the site answered
	// it: err is nil when its events were published, a *RefusedError when
	// they were not, or the stream's error when it ended before the
	// answer. It runs on the publisher's reading goroutine and must not
	// call the publisher.
	OnAnswer func(seq uint64, err error)
}

// Publisher publishes over one publish stream. Publish may be called from
// one goroutine at a time.
type Publisher struct {
	c        *websocket.Conn
	opts     Options
	kind     string
	window   chan struct{} // a token per batch in flight
	seq      uint64        // the last batch sent
	buf      []byte
	readDone chan struct{}

	mu       sync.Mutex // guards answered and err
	answered uint64
	err      error
	idle     chan struct{} // closed and replaced when answered reaches seq
}

// Dial opens a publish stream at url, a site's event API address with
// ws:// (or wss://) and the path /v1/events/NAME/publish (or /v1/topics/...
// or /v1/queues/...).
func Dial(ctx context.Context, url string, opts Options) (*Publisher, error) {
	h := http.Header{}
	if opts.Authorization != "" {
		h.Set("Authorization", opts.Authorization)
	}
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, apiError(resp)
		}
		return nil, fmt.Errorf("publish stream to %s: %w (is the site running?)", url, err)
	}
	c.SetReadLimit(64 << 10)
	_, msg, err := c.Read(ctx)
	var hello events.PubReply
	if err == nil {
		hello, err = events.DecodePubReply(msg)
	}
	if err == nil && hello.Type != events.PubHello {
		err = fmt.Errorf("%w: message %d before the hello", events.ErrBadFrame, hello.Type)
	}
	if err != nil {
		c.CloseNow()
		return nil, fmt.Errorf("publish stream to %s: %w", url, err)
	}
	p := &Publisher{c: c, opts: opts, kind: resp.Header.Get("Weft-Kind"),
		window: make(chan struct{}, min(hello.Window, 1<<16)), readDone: make(chan struct{}), idle: make(chan struct{})}
	go p.read()
	return p, nil
}

func apiError(resp *http.Response) error {
	b, _ := io.ReadAll(resp.Body)
	e := &APIError{Status: resp.StatusCode, Message: string(b)}
	var eb apitype.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
	}
	return e
}

// Kind is what the site publishes to: "topic" or "queue".
func (p *Publisher) Kind() string { return p.kind }

// Publish sends one batch of structured-mode CloudEvents in JSON, waiting
// while the window is full, and returns its seq; its answer goes to
// OnAnswer. evs may be reused once Publish returns.
func (p *Publisher) Publish(ctx context.Context, evs [][]byte) (uint64, error) {
	select {
	case p.window <- struct{}{}:
	case <-p.readDone:
		return 0, p.streamErr()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	p.mu.Lock()
	p.seq++
	seq := p.seq
	p.mu.Unlock()
	p.buf = events.AppendPubBatch(p.buf[:0], seq, evs)
	if err := p.c.Write(ctx, websocket.MessageBinary, p.buf); err != nil {
		p.fail(err)
		return 0, err
	}
	return seq, nil
}

// Flush waits until every batch sent has been answered.
func (p *Publisher) Flush(ctx context.Context) error {
	for {
		p.mu.Lock()
		done, idle, err := p.answered == p.seq, p.idle, p.err
		p.mu.Unlock()
		switch {
		case err != nil:
			return err
		case done:
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close ends the stream; batches not answered yet get the stream's error.
func (p *Publisher) Close() error {
	err := p.c.Close(websocket.StatusNormalClosure, "")
	<-p.readDone
	return err
}

func (p *Publisher) streamErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *Publisher) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.c.CloseNow()
}

// read takes the site's answers until the stream ends.
func (p *Publisher) read() {
	defer close(p.readDone)
	var err error
	for err == nil {
		var msg []byte
		if _, msg, err = p.c.Read(context.Background()); err != nil {
			break
		}
		var r events.PubReply
		if r, err = events.DecodePubReply(msg); err != nil {
			break
		}
		err = p.answer(r)
	}
	if err == nil || websocket.CloseStatus(err) == websocket.StatusNormalClosure {
		err = errors.New("publish stream closed")
	}
	p.fail(err)
	// What was not answered will not be.
	p.mu.Lock()
	from, to := p.answered+1, p.seq
	p.answered = p.seq
	close(p.idle)
	p.mu.Unlock()
	for s := from; s <= to; s++ {
		p.call(s, err)
	}
}

// answer applies one answer: an acknowledgement of every batch up to its
// seq, or the refusal of the next one.
func (p *Publisher) answer(r events.PubReply) error {
	p.mu.Lock()
	from, sent := p.answered+1, p.seq
	p.mu.Unlock()
	var refused error
	switch {
	case r.Type == events.PubAck && r.Seq >= from && r.Seq <= sent:
	case r.Type == events.PubRefuse && r.Seq == from && r.Seq <= sent:
		refused = &RefusedError{Seq: r.Seq, Code: r.Code, Message: r.Message, RetryAfter: r.RetryAfter}
	default:
		return fmt.Errorf("%w: answer %d (type %d) with batches %d to %d unanswered", events.ErrBadFrame, r.Seq, r.Type, from, sent)
	}
	for s := from; s <= r.Seq; s++ {
		p.call(s, refused)
		<-p.window
	}
	p.mu.Lock()
	p.answered = r.Seq
	if p.answered == p.seq {
		close(p.idle)
		p.idle = make(chan struct{})
	}
	p.mu.Unlock()
	return nil
}

func (p *Publisher) call(seq uint64, err error) {
	if p.opts.OnAnswer != nil {
		p.opts.OnAnswer(seq, err)
	}
}
