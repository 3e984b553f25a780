package broker

import (
	"context"
	"time"

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
	pattern string
	ch      chan delivery
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
	in := interest{events.Topic, pattern}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.admitLocked(in, nil); err != nil {
		return nil, err
	}
	t := &Tap{b: b, name: name, pattern: pattern, ch: make(chan delivery, 1024)}
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
	b.ints.release(interest{events.Topic, t.pattern}, time.Time{})
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
	b, name := t.b, tapCursor(t.name)
	cursor, _, err := b.st.Cursor(name)
	if err != nil {
		return err
	}
	var batch [][]byte
	for ctx.Err() == nil {
		wake := b.inboxWait()
		batch = batch[:0]
		read, last := 0, cursor
		err := b.st.ReadIn(cursor, func(seq uint64, e store.Entry) bool {
			if events.Kind(e.Kind) == events.Topic && events.Match(t.pattern, e.Subject) {
				batch = append(batch, e.Payload)
			}
			read, last = read+1, seq
			return len(batch) < tapBatch && read < 4*tapBatch
		})
		if err != nil {
			return err
		}
		if read > 0 {
			if len(batch) > 0 {
				if err := send(ctx, batch); err != nil {
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
			batch = append(batch, d.JSON)
			for len(batch) < tapBatch {
				select {
				case d := <-t.ch:
					batch = append(batch, d.JSON)
					continue
				default:
				}
				break
			}
			if err := send(ctx, batch); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}
