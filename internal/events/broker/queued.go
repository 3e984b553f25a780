package broker

import (
	"slices"
	"strings"
	"time"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/ledger"
	"weft.dev/weft/internal/events/queuemark"
	"weft.dev/weft/internal/events/store"
)

// A persisted queue's entry reaches the nearest site with a consumer (log.go)
// and waits in that site's queued bucket; one worker per queue hands each
// entry to one local consumer and then moves the queue's cursor past it.

// startQueues starts a worker for every queue that has a cursor here: their
// entries survived a restart.
func (b *Broker) startQueues() {
	qs, err := b.st.QueueCursors()
	if err != nil {
		b.log.Error("cannot list queue cursors", "err", err)
	}
	for _, q := range qs {
		// What waits from before the restart counts toward the water
		// marks; from now on store counts what arrives.
		cursor, _, err := b.st.Cursor(store.QueueCursor(q))
		if err != nil {
			b.log.Error("cannot read queue cursor", "queue", q, "err", err)
		}
		waiting := 0
		b.st.ReadQueued(cursor, func(_ uint64, e store.Entry) bool {
			if e.Subject == q {
				waiting++
			}
			return true
		})
		b.marksDo(func(m *queuemark.Marks) { m.Found(q, waiting) })
		b.startQueue(q)
	}
}

// startQueue starts the worker of a queue unless it runs.
func (b *Broker) startQueue(queue string) {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	if b.handing[queue] || b.ctx == nil {
		return
	}
	b.handing[queue] = true
	b.goFunc(func() { b.runQueue(queue) })
}

// runQueue hands the queue's entries out in order. The cursor is saved after
// each batch read, and every cursorSaveInterval within a batch that a slow
// push sink holds up: each save is a commit, and one per entry capped a queue
// at a few thousand entries a second. A restart hands out again what was
// handed since the last save (at least once), and never skips what none
// took.
func (b *Broker) runQueue(queue string) {
	name := store.QueueCursor(queue)
	cursor, _, err := b.st.Cursor(name)
	if err != nil {
		b.log.Error("cannot read queue cursor", "queue", queue, "err", err)
		return
	}
	saved := cursor
	save := func(to uint64) {
		if to == saved {
			return
		}
		if err := b.st.SetCursor(name, to); err != nil {
			b.log.Error("cannot save queue cursor", "queue", queue, "err", err)
			return
		}
		saved = to
	}
	var rr int
	for b.ctx.Err() == nil {
		wake := b.inboxWait()
		var batch []store.Entry
		var seqs []uint64
		start, from := cursor, cursor
		b.st.ReadQueued(from, func(seq uint64, e store.Entry) bool {
			// Entries of other queues are theirs: skip past them.
			if e.Subject == queue {
				batch, seqs = append(batch, e), append(seqs, seq)
			}
			from = seq
			return len(batch) < 256
		})
		savedAt := b.clock.Now()
		for i, e := range batch {
			// A pass on moves the cursor past the entry in its own
			// transaction; saving it again later does no harm.
			if !b.handQueued(queue, seqs[i], e, &rr) {
				save(cursor)
				return
			}
			b.marksDo(func(m *queuemark.Marks) { m.Taken(queue) })
			cursor = seqs[i]
			if b.clock.Since(savedAt) >= cursorSaveInterval {
				save(cursor)
				savedAt = b.clock.Now()
			}
		}
		cursor = from
		save(cursor)
		if cursor != start {
			continue
		}
		select {
		case <-b.ctx.Done():
		case <-wake:
		}
	}
}

// handQueued gives one entry to one local consumer, taking turns (rr): a live
// subscriber with room in its buffer, or a push subscription, which delivers
// with its retries and dead-letter sink before it returns. While consumers are
// here but none can take it, it waits; with none here any more, it passes the
// entry on toward the nearest consumer elsewhere, with the cursor saved. It
// reports false when the broker stops.
func (b *Broker) handQueued(queue string, seq uint64, e store.Entry, rr *int) bool {
	d := delivery{Seq: seq, Subject: e.Subject, JSON: e.Payload, Trace: tracePtr(e.Trace)}
	for {
		b.mu.Lock()
		var subs []*subscriber
		for _, s := range b.subs {
			if s.kind == events.Queue && events.Match(s.pattern, queue) {
				subs = append(subs, s)
			}
		}
		var pushes []*pusher
		for _, p := range b.pushes {
			if p.kind == events.Queue && events.Match(p.pattern, queue) {
				pushes = append(pushes, p)
			}
		}
		var taps []*Tap
		for t := range b.taps {
			if t.kind == events.Queue && events.Match(t.pattern, queue) {
				taps = append(taps, t)
			}
		}
		b.mu.Unlock()
		// Map order is random: sort, so that taking turns is fair.
		slices.SortFunc(subs, func(x, y *subscriber) int { return strings.Compare(x.id, y.id) })
		slices.SortFunc(pushes, func(x, y *pusher) int { return strings.Compare(x.sub.Name, y.sub.Name) })
		slices.SortFunc(taps, func(x, y *Tap) int { return strings.Compare(x.pattern, y.pattern) })
		n := len(subs) + len(pushes) + len(taps)
		for i := range n {
			k := (*rr + i) % n
			if k < len(subs) {
				select {
				case subs[k].ch <- d:
					*rr = k + 1
					b.m.deliver("queue", events.Queue, d.Subject)
					return true
				default:
					continue
				}
			}
			*rr = k + 1
			if k < len(subs)+len(pushes) {
				return b.deliverPush(b.ctx, pushes[k-len(subs)], d)
			}
			// A queue tap that did not send it (its broker is away) is
			// a busy consumer: try the next.
			taken, stopped := b.handTap(taps[k-len(subs)-len(pushes)], d)
			if stopped {
				return false
			}
			if taken {
				b.m.deliver("queue", events.Queue, d.Subject)
				return true
			}
		}
		if n == 0 {
			return b.passOn(seq, e)
		}
		select {
		case <-b.ctx.Done():
			return false
		case <-b.clock.After(50 * time.Millisecond):
		}
	}
}

// passOn moves a queued entry back to the outbound log for the queue. It
// reports false when the broker stops; a store failure is logged and the
// entry kept, to be retried.
func (b *Broker) passOn(seq uint64, e store.Entry) bool {
	ev, err := cloudevent.Unmarshal(e.Payload)
	if err != nil {
		b.log.Error("dropping a malformed queued event", "queue", e.Subject, "err", err)
		return true
	}
	p := store.Put{Entry: e, Source: ev.Source(), ID: ev.ID()}
	for {
		err := b.st.PassOn(&p, seq)
		if err == nil {
			break
		}
		b.log.Error("cannot pass a queued event on", "queue", e.Subject, "err", err)
		select {
		case <-b.ctx.Done():
			return false
		case <-b.clock.After(time.Second):
		}
	}
	b.recent.add(p.Out, outEntry(p))
	b.appended([]ledger.Entry{{Off: p.Out, Dests: p.Fwd}}, []queued{{p.Out, e.Subject}})
	return true
}
