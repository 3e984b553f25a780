package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/coder/websocket"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
)

// ErrNotWebSocket is returned for a request to a publish stream's address
// that is not a WebSocket upgrade; 400.
var ErrNotWebSocket = errors.New("a publish stream is a WebSocket")

// pubWindow is how many batches a publish stream's client may have sent and
// not had answered: enough to keep the decoder and the publisher busy while
// answers travel back, few enough that a stalled site stops its publishers
// quickly.
const pubWindow = 16

// pubDecoded is how many decoded batches wait between a publish stream's
// reader and its publisher: the reader decodes the next while the publisher
// publishes, and no more, so that a publisher held up by back-pressure stops
// the reader, the socket and so the client.
const pubDecoded = 4

// peerRoomBytes is how much a neighbour's volatile queue may hold before
// publish streams wait for it to drain: they are back-pressured rather than
// have their events dropped at the queue's limit (peerQueueBytes). An HTTP
// publisher is not held: a request that waits would hold its handler.
const peerRoomBytes = 1 << 20

// pubBatch is a batch a publish stream's reader decoded: its events, or why
// it is refused.
type pubBatch struct {
	seq uint64
	evs []cloudevent.Decoded
	err error
}

// servePublishStream publishes the batches of a WebSocket (spec.md,
// "Publish streams") to the topic or queue name. The credential is checked
// as for a publish request, before the upgrade, with the same answers; the
// stream ends when the credential stops being valid.
func (b *Broker) servePublishStream(w http.ResponseWriter, r *http.Request, kind events.Kind, explicit bool) {
	name, ok := b.publishAllowed(w, r, kind, explicit)
	if !ok {
		return
	}
	if !isWebSocket(r) {
		writeError(w, fmt.Errorf("%w: connect with a WebSocket client (`weft bench pub` does), or publish with POST %s", ErrNotWebSocket, publishPath(r.URL.Path)))
		return
	}
	r, release := b.whileValid(r)
	defer release()
	// The kind it goes to, for a client that let the site resolve it: a
	// name resolves once, for the whole stream.
	w.Header().Set("Weft-Kind", kindName(kind))
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	defer c.CloseNow()
	c.SetReadLimit(events.MaxPubMessage)
	// A traceparent on the upgrade is the parent of every event's publish
	// span that has none of its own.
	ctx, cancel := context.WithCancel(b.requestContext(r))
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, events.AppendPubHello(nil, pubWindow, events.MaxPubMessage)); err != nil {
		return
	}
	batches := make(chan pubBatch, pubDecoded)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(batches)
		if err := b.readPubBatches(ctx, c, batches); err != nil {
			c.Close(websocket.StatusPolicyViolation, err.Error()[:min(len(err.Error()), 120)])
		}
	}()
	err = b.publishBatches(ctx, c, kind, name, batches)
	cancel()
	wg.Wait()
	if err == nil {
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// publishPath is the publish request's path for a publish stream's path.
func publishPath(streamPath string) string {
	return streamPath[:len(streamPath)-len("/publish")]
}

// readPubBatches reads and decodes batches into out until the client closes
// the stream or ctx ends. It returns an error only for a message that breaks
// the protocol, after which the stream is closed.
func (b *Broker) readPubBatches(ctx context.Context, c *websocket.Conn, out chan<- pubBatch) error {
	var last uint64
	size := 0 // of the last message: a publisher's batches are alike
	for {
		typ, r, err := c.Reader(ctx)
		if err != nil {
			return nil // the client went, closed, or ctx ended
		}
		// A buffer of the size that came last, not Read's io.ReadAll
		// growing one through each message (9% of the publishing site's
		// CPU). Each message gets its own: the events alias it.
		buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
		if _, err := buf.ReadFrom(r); err != nil {
			return nil // the client went, or the message is over the limit (Reader closed the stream)
		}
		msg := buf.Bytes()
		size = len(msg)
		if typ != websocket.MessageBinary {
			return errors.New("text message: batches are binary messages")
		}
		seq, raws, err := events.DecodePubBatch(msg, int(b.cfg.MaxEventSize))
		if err != nil {
			return err
		}
		if seq != last+1 {
			return fmt.Errorf("batch %d after %d: number batches from 1, one by one", seq, last)
		}
		last = seq
		evs, err := cloudevent.DecodeEach(raws)
		select {
		case out <- pubBatch{seq: seq, evs: evs, err: err}:
		case <-ctx.Done():
			return nil
		}
	}
}

// publishBatches publishes what the reader decoded, in order, and answers
// each batch. Batches that are waiting together are published together:
// for a persisted topic, one store commit for all of them.
func (b *Broker) publishBatches(ctx context.Context, c *websocket.Conn, kind events.Kind, name string, in <-chan pubBatch) error {
	var (
		evs  []cloudevent.Decoded
		seqs []uint64
	)
	for first := range in {
		evs, seqs = evs[:0], seqs[:0]
		var refused *pubBatch
		next := &first
		for next != nil {
			if next.err != nil {
				refused = next
				break
			}
			evs = append(evs, next.evs...)
			seqs = append(seqs, next.seq)
			next = nil
			select {
			case bt, ok := <-in:
				if ok {
					next = &bt
				}
			default:
			}
		}
		write := func(msg []byte) error { return c.Write(ctx, websocket.MessageBinary, msg) }
		if len(seqs) > 0 {
			err := b.publishHeld(ctx, kind, name, evs)
			switch {
			case err != nil && ctx.Err() != nil:
				return ctx.Err()
			case err == nil:
				if err := write(events.AppendPubAck(nil, seqs[len(seqs)-1])); err != nil {
					return err
				}
			default:
				for _, s := range seqs {
					if err := write(appendRefuse(nil, s, err)); err != nil {
						return err
					}
				}
			}
		}
		clear(evs) // the events can go before the next batch comes
		if refused != nil {
			if err := write(appendRefuse(nil, refused.seq, refused.err)); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// appendRefuse appends the refusal of batch seq for err, with the code and
// wait of the HTTP API's answer.
func appendRefuse(b []byte, seq uint64, err error) []byte {
	a := toAPIError(err)
	return events.AppendPubRefuse(b, seq, a.Code, a.Message, uint64(a.RetryAfter))
}

// publishHeld publishes evs as a publish request does, except that it waits
// where a request is refused: for a publish slot, and for room in the
// neighbours' volatile queues. A stream is back-pressured, not dropped.
func (b *Broker) publishHeld(ctx context.Context, kind events.Kind, name string, evs []cloudevent.Decoded) error {
	select {
	case b.inflight <- struct{}{}:
		defer func() { <-b.inflight }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if p, _ := b.persisted(kind, name); !p {
		if err := b.waitPeerRoom(ctx); err != nil {
			return err
		}
	}
	err := b.Publish(ctx, kind, name, evs)
	if errors.Is(err, ErrNoConsumer) {
		err = fmt.Errorf("%w: queue %q: start a consumer first", err, name)
	}
	return err
}

// waitPeerRoom waits until no neighbour's volatile queue holds more than
// peerRoomBytes, or ctx or the broker ends.
func (b *Broker) waitPeerRoom(ctx context.Context) error {
	for {
		var full *peerOut
		b.mu.Lock()
		for _, p := range b.peers {
			if p.queued.Load() > peerRoomBytes {
				full = p
				break
			}
		}
		b.mu.Unlock()
		if full == nil {
			return nil
		}
		select {
		case <-full.drainedChan():
		case <-ctx.Done():
			return ctx.Err()
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
}
