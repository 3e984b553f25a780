package broker

import (
	"bufio"
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/ledger"
	"weft.dev/weft/internal/events/queuemark"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// Persisted delivery is store-and-forward from hop to hop (spec.md in the
// events package): every site keeps its outbound log, with the destinations
// each entry is still for, and one log stream per neighbour that some
// destination is routed through.

// serveLog is the receiving end of a log stream from a neighbour, or from
// this site itself (openLog): it stores what arrives, in batches, and
// acknowledges the last mark of each batch only once the batch is stored.
func (b *Broker) serveLog(c net.Conn, from siteid.ID) {
	r := bufio.NewReaderSize(c, 256<<10)
	var buf []byte
	// The hop spans of the batch being read: a stream that ends ends them
	// unstored.
	var spans []trace.Span
	defer func() { endSpans(spans, errNotStored) }()
	for {
		var batch []store.Put
		spans = spans[:0]
		var mark uint64
		for len(batch) < 1024 {
			f, nb, err := events.ReadFrame(r, buf)
			buf = nb
			if err != nil {
				return
			}
			switch f.Type {
			case events.FrameData:
				// The publishing site validated the event: the
				// dedup key is all a hop reads of it.
				source, id, err := cloudevent.Key(f.Payload)
				if err != nil {
					b.log.Warn("malformed persisted event; closing the stream", "err", err)
					return
				}
				dests, local := f.Sites, b.local(f.Kind, f.Subject)
				if slices.Contains(dests, local) && !b.admit(from, f.Origin, f.Subject) {
					// Refused here: not stored for this site. A queue's
					// entry is not passed on either, since its nearest
					// consumer is here and would take it back.
					dests, local = slices.DeleteFunc(slices.Clone(dests), func(d siteid.ID) bool { return d == local }), siteid.ID{}
				}
				// The stream from this site itself only moves entries
				// between its buckets: no hop.
				tc := f.Trace
				if from != b.cfg.Self {
					var span trace.Span
					if span, tc = b.startHop(f.Trace, &f, from); span.IsRecording() {
						spans = append(spans, span)
					}
				}
				batch = append(batch, store.Put{Source: source, ID: id, Dests: dests, Local: local,
					Entry: store.Entry{Kind: byte(f.Kind), Subject: f.Subject, Origin: f.Origin, Time: b.clock.Now().UnixNano(), Trace: tc, Payload: append([]byte(nil), f.Payload...)}})
			case events.FrameMark:
				mark = f.Mark
			default:
				b.log.Warn("unexpected frame on a log stream; closing it", "type", f.Type)
				return
			}
			if r.Buffered() == 0 {
				break
			}
		}
		// Not the stream from this site itself: it moves entries out of
		// the log into the queued bucket, and holding it while the log is
		// full would keep the log full.
		if from != b.cfg.Self && !b.waitBacklog() {
			return
		}
		err := b.store(batch)
		endSpans(spans, err)
		spans = spans[:0]
		if err != nil {
			b.log.Error("cannot store received events", "err", err)
			return
		}
		if mark == 0 {
			continue
		}
		if _, err := c.Write(events.AppendFrame(nil, &events.Frame{Type: events.FrameAck, Mark: mark})); err != nil {
			return
		}
	}
}

// errNotStored ends the hop span of an event whose stream ended before it
// was stored: its sender sends it again.
var errNotStored = errors.New("the stream ended before the event was stored")

// openLog opens a log stream to a neighbour, or to this site itself for
// queue entries in its log whose nearest consumer is now here: they take the
// same way into the queued bucket as if they had arrived from elsewhere.
func (b *Broker) openLog(ctx context.Context, next siteid.ID) (net.Conn, error) {
	if next == b.cfg.Self {
		near, far := net.Pipe()
		b.goFunc(func() { b.ServeStream(far, TagLog, b.cfg.Self) })
		return near, nil
	}
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return b.cfg.Net.Open(octx, []siteid.ID{next}, TagLog)
}

// waitBacklog holds a log stream while this site's own log is full or a push
// subscription here is too far behind, so the sender's window fills and its
// publishers get 503s instead of this site growing without bound. It reports false when the broker stops.
func (b *Broker) waitBacklog() bool {
	for b.backlog() >= b.cfg.MaxBacklog || b.consumerLag() != nil {
		select {
		case <-b.ctx.Done():
			return false
		case <-b.clock.After(100 * time.Millisecond):
		}
	}
	return true
}

func (b *Broker) backlog() uint64 {
	b.lmu.Lock()
	defer b.lmu.Unlock()
	return b.ledger.Head() - b.ledger.Low()
}

// store stores events for their destinations, hands those for this site to
// local subscribers and tells the ledger about those to forward.
func (b *Broker) store(ps []store.Put) error {
	if len(ps) == 0 {
		return nil
	}
	res, reserved := b.reserve(ps)
	err := b.st.Put(ps)
	if reserved {
		b.stored(ps, res, err == nil)
	}
	if err != nil {
		return err
	}
	for _, p := range ps {
		for head := b.inHead.Load(); p.In > head && !b.inHead.CompareAndSwap(head, p.In); head = b.inHead.Load() {
		}
	}
	var out []ledger.Entry
	var queues []queued
	grew := false
	for _, p := range ps {
		switch {
		case p.In != 0 && events.Kind(p.Kind) == events.Queue:
			grew = true
			b.startQueue(p.Subject)
		case p.In != 0:
			grew = true
			b.deliverLocal(events.Kind(p.Kind), delivery{Seq: p.In, Subject: p.Subject, JSON: p.Payload, Trace: tracePtr(p.Trace)})
		}
		if p.Out == 0 {
			continue
		}
		b.recent.add(p.Out, outEntry(p))
		out = append(out, ledger.Entry{Off: p.Out, Dests: p.Fwd})
		if events.Kind(p.Kind) == events.Queue {
			queues = append(queues, queued{p.Out, p.Subject})
		}
	}
	if grew {
		b.inboxGrew()
	}
	b.appended(out, queues)
	return nil
}

// outEntry is the outbound entry that the store made of p.
func outEntry(p store.Put) store.Entry {
	e := p.Entry
	e.Dests = p.Fwd
	return e
}

// queued is an outbound entry of a queue.
type queued struct {
	off   uint64
	queue string
}

// appended tells the ledger about entries appended to the outbound log,
// among them entries of queues.
func (b *Broker) appended(out []ledger.Entry, queues []queued) {
	if len(out) == 0 {
		return
	}
	b.ledgerDo(func(l *ledger.Ledger) {
		l.Appended(out)
		if len(queues) == 0 {
			return
		}
		// A queue's pseudo-site is known by its pattern, and routed as its
		// nearest consumer is.
		for _, q := range queues {
			b.qout.appended(q.queue, q.off)
			l.Interest(events.QueueSite(q.queue), []string{events.Interest(events.Queue, q.queue)})
		}
		l.Routes(b.nextHops(l))
	})
}

// marksDo runs inputs through the queues' water marks and announces the
// interests anew when a queue became full or no longer full. It announces
// after releasing marksMu, which is taken after mu; the announcement reads
// the marks as they are then, so of two concurrent calls the later one's
// state is what is announced.
func (b *Broker) marksDo(step func(m *queuemark.Marks)) {
	b.marksMu.Lock()
	step(b.marks)
	flipped := len(b.marks.Ready()) > 0
	b.marks.Advance()
	b.marksMu.Unlock()
	if flipped {
		b.interestsChanged()
	}
}

// reserve marks the queue entries of ps that this site has no room for
// (queuemark.Marks.Reserve). They go into the outbound log for the queue,
// routed to the nearest consumer elsewhere, or waiting there until one, or
// this site, has room again (nextHops). The store still drops those taken
// here already. The caller must pass what it returns to stored once the
// batch is stored, or failed to be.
func (b *Broker) reserve(ps []store.Put) (queuemark.Reservation, bool) {
	var queues []string
	var at []int
	for i, p := range ps {
		if events.Kind(p.Kind) == events.Queue && !p.Local.IsZero() {
			queues, at = append(queues, p.Subject), append(at, i)
		}
	}
	// Most batches are a topic's: they leave the marks alone.
	if len(queues) == 0 {
		return queuemark.Reservation{}, false
	}
	var res queuemark.Reservation
	var over []bool
	b.marksDo(func(m *queuemark.Marks) { res, over = m.Reserve(queues) })
	for k, i := range at {
		ps[i].Overflow = over[k]
	}
	return res, true
}

// stored ends what reserve began: the queue entries stored here (the store
// dropped duplicates) now wait for a local consumer; none if the store failed.
func (b *Broker) stored(ps []store.Put, res queuemark.Reservation, ok bool) {
	var kept []string
	for _, p := range ps {
		if ok && p.In != 0 && events.Kind(p.Kind) == events.Queue {
			kept = append(kept, p.Subject)
		}
	}
	b.marksDo(func(m *queuemark.Marks) { m.Stored(res, kept) })
}

// local is the destination that this site is for an event of kind on
// subject: itself for a topic; for a queue, the queue's pseudo-site when a
// consumer is here (with room or not: reserve), else none.
func (b *Broker) local(kind events.Kind, subject string) siteid.ID {
	if kind == events.Topic {
		return b.cfg.Self
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.subs {
		if s.kind == events.Queue && events.Match(s.pattern, subject) {
			return events.QueueSite(subject)
		}
	}
	for _, p := range b.pushes {
		if p.kind == events.Queue && events.Match(p.pattern, subject) {
			return events.QueueSite(subject)
		}
	}
	for t := range b.taps {
		if t.kind == events.Queue && events.Match(t.pattern, subject) {
			return events.QueueSite(subject)
		}
	}
	return siteid.ID{}
}

// nextHops maps every reachable site, and every queue pseudo-site the ledger
// knows, to the neighbour to send its entries to: for a queue, toward its
// nearest consumer, or this site itself when that is here and has room.
// It runs under lmu and reads the table there: read before, a table older
// than the one a concurrent call applied could overwrite its routes.
func (b *Broker) nextHops(l *ledger.Ledger) map[siteid.ID]siteid.ID {
	t := b.cfg.Net.Table()
	b.marksMu.Lock()
	defer b.marksMu.Unlock()
	next := map[siteid.ID]siteid.ID{}
	for _, r := range t.Sites() {
		if len(r.Path) > 0 {
			next[r.ID] = r.Path[0]
		}
	}
	for id, d := range l.Dests() {
		for _, in := range d.Patterns {
			k, q, ok := events.ParseInterest(in)
			if !ok || k != events.Queue {
				continue
			}
			// Until the table shows this site's interest withdrawn, its
			// own full queue would send entries around to itself.
			rs := slices.DeleteFunc(events.Interested(t, events.Queue, q), func(r routing.SiteRoute) bool {
				return r.ID == b.cfg.Self && b.marks.Full(q)
			})
			if len(rs) > 0 {
				next[id] = b.cfg.Self
				if len(rs[0].Path) > 0 {
					next[id] = rs[0].Path[0]
				}
			}
		}
	}
	return next
}

// ledgerDo runs inputs through the ledger and carries out its outputs: sends
// are queued at once; cursor saves are handed to saveLoop, because an fsync
// under lmu would stall every publish and acknowledgement behind it. A cursor
// saved late only costs redelivery after a restart.
func (b *Broker) ledgerDo(step func(l *ledger.Ledger)) {
	b.lmu.Lock()
	defer b.lmu.Unlock()
	step(b.ledger)
	rd := b.ledger.Ready()
	b.ledger.Advance()
	b.queueSavesLocked(rd.Save, rd.Delete)
	for id, d := range rd.Save {
		b.qout.acked(id, d.Acked)
	}
	for _, id := range rd.Delete {
		b.qout.deleted(id)
	}
	hops := b.ledger.Hops()
	for id, h := range b.hops {
		if !slices.Contains(hops, id) {
			h.cancel()
			delete(b.hops, id)
		}
	}
	for _, id := range hops {
		if b.hops[id] == nil && b.ctx != nil && b.ctx.Err() == nil {
			ctx, cancel := context.WithCancel(b.ctx)
			h := &hopOut{next: id, sends: make(chan ledger.Send, ledgerWindow), cancel: cancel}
			b.hops[id] = h
			b.goFunc(func() { b.runHop(ctx, h) })
		}
	}
	for _, s := range rd.Sends {
		if h := b.hops[s.Hop]; h != nil {
			// Never blocks: every send covers at least one entry of the
			// window, and the channel holds a whole window.
			h.sends <- s
		}
	}
}

// queueSavesLocked merges cursor changes into what saveLoop writes next: the
// latest state of each destination wins, so saves never go backwards.
func (b *Broker) queueSavesLocked(save map[siteid.ID]ledger.Dest, del []siteid.ID) {
	if len(save) == 0 && len(del) == 0 {
		return
	}
	for id, d := range save {
		b.toSave[id] = store.Dest{Patterns: d.Patterns, Acked: d.Acked}
		delete(b.toDelete, id)
	}
	for _, id := range del {
		b.toDelete[id] = true
		delete(b.toSave, id)
	}
	select {
	case b.saveWake <- struct{}{}:
	default:
	}
}

// cursorSaveInterval spaces cursor saves: each is a commit that a publisher
// arriving meanwhile waits behind, and acknowledgements come once per batch
// or more often. A cursor saved late costs only redelivery after a crash.
const cursorSaveInterval = 100 * time.Millisecond

// saveLoop writes queued cursor changes, whatever gathered since the previous
// write in one go, and a last time when the broker stops.
func (b *Broker) saveLoop() {
	defer b.saveCursors()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.saveWake:
		}
		b.saveCursors()
		select {
		case <-b.ctx.Done():
			return
		case <-b.clock.After(cursorSaveInterval):
		}
	}
}

func (b *Broker) saveCursors() {
	b.lmu.Lock()
	save, del := b.toSave, slices.Collect(maps.Keys(b.toDelete))
	b.toSave, b.toDelete = map[siteid.ID]store.Dest{}, map[siteid.ID]bool{}
	b.lmu.Unlock()
	if err := b.st.SaveDests(save, del); err != nil {
		b.log.Error("cannot save delivery cursors", "err", err)
	}
}

// TableChanged tells the broker that routes or records changed: reachable
// sites' topic interests become the ledger's destinations, and their routes
// its next hops. It calls Net.Table, so the caller must not hold a lock that
// Net.Table takes.
func (b *Broker) TableChanged() {
	if b.ctx == nil {
		return
	}
	b.ledgerDo(func(l *ledger.Ledger) {
		t := b.cfg.Net.Table()
		for _, rec := range t.Records() {
			if rec.Site == b.cfg.Self {
				continue
			}
			var ps []string
			for _, in := range rec.Interests {
				if k, _, ok := events.ParseInterest(in); ok && k == events.Topic {
					ps = append(ps, in)
				}
			}
			l.Interest(rec.Site, ps)
		}
		l.Routes(b.nextHops(l))
	})
}

// hopOut keeps the log stream to one neighbour.
type hopOut struct {
	next   siteid.ID
	sends  chan ledger.Send
	cancel context.CancelFunc
}

// runHop keeps a log stream open to the neighbour while some destination is
// routed through it, sends what the ledger asks, and feeds acknowledgements
// back.
func (b *Broker) runHop(ctx context.Context, h *hopOut) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := b.hopSession(ctx, h); err == nil {
			backoff = 100 * time.Millisecond
		}
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		backoff = min(backoff*2, 2*time.Second)
		select {
		case <-ctx.Done():
		case <-b.clock.After(wait):
		}
	}
}

func (b *Broker) hopSession(ctx context.Context, h *hopOut) error {
	c, err := b.openLog(ctx, h.next)
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		<-sctx.Done()
		c.Close()
	}()
	// Drain requests meant for an earlier stream: Opened resends from the
	// cursors anyway.
	for len(h.sends) > 0 {
		<-h.sends
	}
	var stream uint64
	b.ledgerDo(func(l *ledger.Ledger) {
		l.Opened(h.next)
		stream = l.Stream(h.next)
	})
	defer b.ledgerDo(func(l *ledger.Ledger) { l.Closed(h.next, stream) })
	acks := make(chan error, 1)
	go func() {
		br := bufio.NewReader(c)
		for {
			f, _, err := events.ReadFrame(br, nil)
			if err == nil && f.Type != events.FrameAck {
				err = errors.New("unexpected frame on a log stream")
			}
			if err != nil {
				acks <- err
				stop()
				return
			}
			b.ledgerDo(func(l *ledger.Ledger) { l.Acked(h.next, stream, f.Mark) })
		}
	}()
	w := bufio.NewWriterSize(c, 256<<10)
	sent := b.m.hopFrames.WithLabelValues(h.next.String())
	var frame []byte
	var dests []siteid.ID
	var recent []recentEntry
	for {
		var s ledger.Send
		select {
		case <-sctx.Done():
			select {
			case err := <-acks:
				return err
			default:
				return sctx.Err()
			}
		case s = <-h.sends:
		}
		if s.Stream != stream {
			continue
		}
		var werr error
		send := func(_ uint64, e store.Entry) bool {
			// The entry may be recentOut's, shared with other hops:
			// filtered into a buffer of this hop's own.
			dests = dests[:0]
			for _, id := range e.Dests {
				if slices.Contains(s.Dests, id) {
					dests = append(dests, id)
				}
			}
			if len(dests) == 0 {
				return true
			}
			frame = events.AppendFrame(frame[:0], &events.Frame{Type: events.FrameData, Trace: e.Trace, Kind: events.Kind(e.Kind), Subject: e.Subject, Origin: e.Origin, Sites: dests, Payload: e.Payload})
			_, werr = w.Write(frame)
			b.m.forwardedPersisted.Inc()
			sent.Inc()
			return werr == nil
		}
		var err error
		var ok bool
		if recent, ok = b.recent.get(s.From, s.To, recent); ok {
			for _, r := range recent {
				if !send(r.off, r.e) {
					break
				}
			}
		} else {
			err = b.st.ReadOut(s.From, s.To, send)
		}
		if err == nil {
			err = werr
		}
		if err == nil {
			_, err = w.Write(events.AppendFrame(frame[:0], &events.Frame{Type: events.FrameMark, Mark: s.Mark}))
		}
		if err == nil && len(h.sends) == 0 {
			err = w.Flush()
		}
		if err != nil {
			return err
		}
	}
}

// inboxGrew wakes whoever waits for new inbox entries.
func (b *Broker) inboxGrew() {
	b.mu.Lock()
	close(b.inNotify)
	b.inNotify = make(chan struct{})
	b.mu.Unlock()
}

func (b *Broker) inboxWait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inNotify
}

func (b *Broker) persisted(kind events.Kind, name string) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if kind == events.Topic {
		if t, ok := b.topics[name]; ok && t.Spec.Delivery == resource.DeliveryPersisted {
			d, _ := time.ParseDuration(t.Spec.Retention)
			return true, d
		}
	}
	if q, ok := b.queues[name]; kind == events.Queue && ok && q.Spec.Delivery == resource.DeliveryPersisted {
		return true, 0
	}
	return false, 0
}

func (b *Broker) publishPersisted(kind events.Kind, subject string, evs []cloudevent.Decoded, tcs []tracectx.Context) error {
	// A topic's event is for this site (its inbox, which also tells a
	// publisher's retry) and every interested one; a queue's for the queue.
	local := b.local(kind, subject)
	b.lmu.Lock()
	backlog := b.ledger.Head() - b.ledger.Low()
	dests := []siteid.ID{events.QueueSite(subject)}
	if kind == events.Topic {
		dests = append([]siteid.ID{b.cfg.Self}, b.ledger.Targets(subject)...)
	}
	b.lmu.Unlock()
	if backlog >= b.cfg.MaxBacklog {
		return ErrBackPressure
	}
	if err := b.consumerLag(); err != nil {
		return err
	}
	now := b.clock.Now().UnixNano()
	ps := make([]store.Put, len(evs))
	for i, e := range evs {
		ps[i] = store.Put{
			Entry:  store.Entry{Kind: byte(kind), Subject: subject, Origin: b.cfg.Self, Time: now, Trace: traceAt(tcs, i), Payload: e.JSON},
			Source: e.Event.Source(), ID: e.Event.ID(), Dests: dests, Local: local, Publish: true,
		}
	}
	if err := b.store(ps); err != nil {
		return err
	}
	stored := 0
	for _, p := range ps {
		if p.In != 0 || p.Out != 0 {
			stored++
		}
	}
	b.m.publish("persisted", kind, subject, stored)
	return nil
}

// expire drops acknowledged and expired entries; Run calls it once a minute.
func (b *Broker) expire() {
	b.mu.Lock()
	retention := 24 * time.Hour
	for _, tp := range b.topics {
		if d, err := time.ParseDuration(tp.Spec.Retention); err == nil && tp.Spec.Delivery == resource.DeliveryPersisted {
			retention = max(retention, d)
		}
	}
	b.mu.Unlock()
	b.lmu.Lock()
	low := b.ledger.Low()
	b.lmu.Unlock()
	if err := b.st.Expire(low, b.clock.Now().Add(-retention)); err != nil {
		b.log.Error("event store expiry failed", "err", err)
	}
}
