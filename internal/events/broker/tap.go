package broker

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/store"
)

// Tap is an in-process consumer of a topic pattern at this site: an event
// bridge's way out of the mesh. While it is open its interest is announced,
// as a push subscription's is, so persisted events for the pattern are
// stored in this site's inbox; Run hands them on from a cursor kept in the
// store, which moves only once the handler took them; a new tap starts with
// what arrives after OpenTap. Volatile events come
// through a channel, at most once.
type Tap struct {
	b       *Broker
	name    string
	kind    events.Kind
	pattern string
	ch      chan delivery
	// req carries a persisted queue entry from the queue's worker to Run
	// (queue taps only), which answers on its done once send returned.
	req chan tapReq
}

// tapReq is one persisted queue entry handed to a queue tap.
type tapReq struct {
	d    delivery
	done chan error
}

// tapCursor is the store's cursor name of the tap name: subscriptions'
// names are DNS names, which hold no slash.
func tapCursor(name string) string { return "tap/" + name }

// tapBatch bounds the persisted events one handler call gets.
const tapBatch = 256

// OpenTap opens a tap named name (its cursor's name) for a topic pattern.
// A pattern that is not valid gets an error wrapping events.ErrBadSubject,
// and one beyond MaxInterests ErrTooManyInterests. The caller must Close
// it. It may be called before Run, so that a restarted site announces the
// tap's interest in its first record.
func (b *Broker) OpenTap(name, pattern string) (*Tap, error) {
	if err := events.ValidatePattern(pattern); err != nil {
		return nil, err
	}
	// A new tap starts here, not at its first Run: a bridge opens its taps
	// before it reaches its broker, and what arrives meanwhile is for it.
	if _, ok, err := b.st.Cursor(tapCursor(name)); err != nil {
		return nil, err
	} else if !ok {
		_, head, err := b.st.Heads()
		if err == nil {
			err = b.st.SetCursor(tapCursor(name), head)
		}
		if err != nil {
			return nil, err
		}
	}
	return b.addTap(&Tap{b: b, name: name, kind: events.Topic, pattern: pattern})
}

// OpenQueueTap opens a tap that is a consumer of the queues of pattern at
// this site, as a subscriber of kind queue is: each event reaches one
// consumer, the nearest first. A persisted queue's entry counts as taken
// only once Run's send returned nil for it; until then, and while no Run
// runs, it waits here (a consumer that is present but busy), so it is sent
// at least once. Errors are OpenTap's.
func (b *Broker) OpenQueueTap(pattern string) (*Tap, error) {
	if err := events.ValidatePattern(pattern); err != nil {
		return nil, err
	}
	return b.addTap(&Tap{b: b, kind: events.Queue, pattern: pattern, req: make(chan tapReq)})
}

// addTap admits t's interest and announces it.
func (b *Broker) addTap(t *Tap) (*Tap, error) {
	in := interest{t.kind, t.pattern}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.admitLocked(in, nil); err != nil {
		return nil, err
	}
	t.ch = make(chan delivery, 1024)
	b.taps[t] = true
	b.ints.hold(in)
	b.interestsChangedLocked()
	return t, nil
}

// Close withdraws the tap's interest. Its cursor stays for a tap of the
// same name opened later; DeleteTapCursor forgets it.
func (t *Tap) Close() {
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.taps[t] {
		return
	}
	delete(b.taps, t)
	b.ints.release(interest{t.kind, t.pattern}, time.Time{})
	b.interestsChangedLocked()
}

// DeleteTapCursor forgets the position of the tap name, whose bridge is
// gone.
func (b *Broker) DeleteTapCursor(name string) error { return b.st.DeleteCursor(tapCursor(name)) }

// Run hands the tap's events to send, in batches of structured JSON
// CloudEvents, until ctx ends or send fails; it returns send's error. A
// persisted batch counts as delivered only when send returns nil: the
// cursor then moves past it, so a Run after a failure or a restart sends it
// again (at least once). One Run at a time per tap.
func (t *Tap) Run(ctx context.Context, send func(ctx context.Context, evs [][]byte) error) error {
	if t.kind == events.Queue {
		return t.runQueue(ctx, send)
	}
	b, name := t.b, tapCursor(t.name)
	cursor, _, err := b.st.Cursor(name)
	if err != nil {
		return err
	}
	var batch [][]byte
	var spans []trace.Span
	for ctx.Err() == nil {
		wake := b.inboxWait()
		batch, spans = batch[:0], spans[:0]
		read, last := 0, cursor
		err := b.st.ReadIn(cursor, func(seq uint64, e store.Entry) bool {
			if events.Kind(e.Kind) == events.Topic && events.Match(t.pattern, e.Subject) {
				batch = append(batch, e.Payload)
				spans = t.startDeliver(ctx, spans, delivery{Seq: seq, Subject: e.Subject, Trace: tracePtr(e.Trace)})
			}
			read, last = read+1, seq
			return len(batch) < tapBatch && read < 4*tapBatch
		})
		if err != nil {
			return err
		}
		if read > 0 {
			if len(batch) > 0 {
				err := send(ctx, batch)
				endSpans(spans, err)
				if err != nil {
					return err
				}
			}
			cursor = last
			if err := b.st.SetCursor(name, cursor); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case d := <-t.ch:
			if err := t.sendVolatile(ctx, d, batch[:0], spans[:0], send); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// startDeliver appends to spans the delivery span of d, when it is traced.
func (t *Tap) startDeliver(ctx context.Context, spans []trace.Span, d delivery) []trace.Span {
	name := "tap"
	if t.name != "" {
		name = "tap:" + t.name
	}
	if _, span := t.b.startDeliver(ctx, d.trace(), d.Subject, t.kind, name, d.Seq); span.IsRecording() {
		spans = append(spans, span)
	}
	return spans
}

// sendVolatile sends d and what else waits in the tap's channel, at most
// tapBatch events.
func (t *Tap) sendVolatile(ctx context.Context, d delivery, batch [][]byte, spans []trace.Span, send func(context.Context, [][]byte) error) error {
	batch, spans = append(batch, d.JSON), t.startDeliver(ctx, spans, d)
	for len(batch) < tapBatch {
		select {
		case d := <-t.ch:
			batch, spans = append(batch, d.JSON), t.startDeliver(ctx, spans, d)
			continue
		default:
		}
		break
	}
	err := send(ctx, batch)
	endSpans(spans, err)
	return err
}

// runQueue is Run for a queue tap: persisted entries one at a time as the
// queue's worker hands them (handQueued), volatile ones from the channel.
func (t *Tap) runQueue(ctx context.Context, send func(ctx context.Context, evs [][]byte) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-t.req:
			spans := t.startDeliver(ctx, nil, r.d)
			err := send(ctx, [][]byte{r.d.JSON})
			endSpans(spans, err)
			r.done <- err
			if err != nil {
				return err
			}
		case d := <-t.ch:
			if err := t.sendVolatile(ctx, d, nil, nil, send); err != nil {
				return err
			}
		}
	}
}

// handTap offers a persisted queue entry to a queue tap and reports whether
// its Run sent it. A tap whose Run does not take it within a moment (its
// broker is away or busy) has not: the worker tries again.
func (b *Broker) handTap(t *Tap, d delivery) (taken, stopped bool) {
	r := tapReq{d: d, done: make(chan error, 1)}
	select {
	case t.req <- r:
	case <-b.ctx.Done():
		return false, true
	case <-b.clock.After(50 * time.Millisecond):
		return false, false
	}
	select {
	case err := <-r.done:
		return err == nil, false
	case <-b.ctx.Done():
		return false, true
	}
}
