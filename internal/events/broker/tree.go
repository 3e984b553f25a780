package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// peerOut is the volatile stream to one neighbour: chunks of frames are
// queued and written by one goroutine; what does not fit in the queue is
// dropped (volatile is at most once and must not stall the publisher or the
// transit site).
type peerOut struct {
	ch     chan chunk
	queued atomic.Int64 // bytes in ch

	// drainMu guards drained: made by a publish stream waiting for room
	// (waitPeerRoom), closed by the writer when it next takes a chunk.
	drainMu sync.Mutex
	drained chan struct{}
}

// drainedChan is closed once the writer takes a chunk from the queue.
func (p *peerOut) drainedChan() <-chan struct{} {
	p.drainMu.Lock()
	defer p.drainMu.Unlock()
	if p.drained == nil {
		p.drained = make(chan struct{})
	}
	return p.drained
}

// wakeWaiters wakes the publish streams waiting for room; the writer calls
// it for every chunk it takes.
func (p *peerOut) wakeWaiters() {
	p.drainMu.Lock()
	if p.drained != nil {
		close(p.drained)
		p.drained = nil
	}
	p.drainMu.Unlock()
}

// chunk is n FrameEvent frames, encoded one after the other.
type chunk struct {
	b []byte
	n int
}

// The queue to a neighbour is bounded in chunks and, since one chunk holds
// a whole publish request, in bytes.
const (
	peerQueue      = 8192
	peerQueueBytes = 64 << 20
)

// forwardFrame queues f, a FrameEvent, for the neighbour at f.Paths[0][0].
func (b *Broker) forwardFrame(f *events.Frame) {
	b.forward(f.Paths[0][0], chunk{b: events.AppendFrame(nil, f), n: 1})
}

// forward queues c for the neighbour next. The frames of one publish
// request go as one chunk: one queue operation and one count for all.
func (b *Broker) forward(next siteid.ID, c chunk) {
	b.mu.Lock()
	p := b.peers[next]
	b.mu.Unlock()
	// A writer holds a queue of peerQueue chunks for a minute, and a frame
	// from a neighbour names up to MaxPaths next hops: only a neighbour
	// gets one, or a frame naming made-up sites would pile them up.
	if p == nil && !b.neighbour(next) {
		b.m.dropped.WithLabelValues("no-link").Add(float64(c.n))
		return
	}
	if p == nil {
		b.mu.Lock()
		if p = b.peers[next]; p == nil && b.ctx != nil && b.ctx.Err() == nil {
			p = &peerOut{ch: make(chan chunk, peerQueue)}
			b.peers[next] = p
			b.goFunc(func() { b.runPeerOut(next, p) })
		}
		b.mu.Unlock()
	}
	if p == nil {
		return
	}
	if p.queued.Add(int64(len(c.b))) <= peerQueueBytes {
		select {
		case p.ch <- c:
			b.m.forwarded.WithLabelValues("volatile").Add(float64(c.n))
			return
		default:
		}
	}
	p.queued.Add(-int64(len(c.b)))
	b.m.dropped.WithLabelValues("link-queue-full").Add(float64(c.n))
}

// branchHeads are the neighbours branches go to.
func branchHeads(branches []events.Branch) []siteid.ID {
	next := make([]siteid.ID, len(branches))
	for i, br := range branches {
		next[i] = br.Next
	}
	return next
}

// neighbour reports whether this site announces a link to id.
func (b *Broker) neighbour(id siteid.ID) bool {
	return slices.ContainsFunc(b.cfg.Net.Table().Links(b.cfg.Self), func(l routing.Link) bool { return l.Peer == id })
}

// runPeerOut writes queued frames to the neighbour, opening the stream on
// demand. When the stream fails, what was queued for it is dropped and the
// next frame opens a new one; idle for a minute, the writer ends.
func (b *Broker) runPeerOut(peer siteid.ID, p *peerOut) {
	defer func() {
		b.mu.Lock()
		delete(b.peers, peer)
		b.mu.Unlock()
	}()
	var conn net.Conn
	var w *bufio.Writer
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	idle := b.clock.NewTimer(time.Minute)
	defer idle.Stop()
	take := func(c chunk) chunk {
		p.queued.Add(-int64(len(c.b)))
		p.wakeWaiters()
		return c
	}
	for {
		var c chunk
		select {
		case <-b.ctx.Done():
			return
		case <-idle.C():
			return
		case c = <-p.ch:
		}
		take(c)
		idle.Reset(time.Minute)
		if conn == nil {
			ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
			nc, err := b.cfg.Net.Open(ctx, []siteid.ID{peer}, TagTree)
			cancel()
			if err != nil {
				b.m.dropped.WithLabelValues("no-link").Add(float64(c.n))
				continue
			}
			conn, w = nc, bufio.NewWriterSize(nc, 64<<10)
		}
		n := c.n
		_, err := w.Write(c.b)
		// Batch whatever else is queued into the same flush.
		for err == nil && len(p.ch) > 0 {
			c = take(<-p.ch)
			n += c.n
			_, err = w.Write(c.b)
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			b.m.dropped.WithLabelValues("link-broken").Add(float64(n))
			conn.Close()
			conn = nil
		}
	}
}

func (b *Broker) serveTree(c net.Conn, from siteid.ID) {
	r := bufio.NewReaderSize(c, 64<<10)
	var buf []byte
	for {
		f, nb, err := events.ReadFrame(r, buf)
		buf = nb
		if err != nil {
			if !errors.Is(err, io.EOF) && b.ctx.Err() == nil {
				b.log.Debug("event stream ended", "err", err)
			}
			return
		}
		if f.Type != events.FrameEvent {
			b.log.Warn("unexpected frame on a tree stream; closing it", "type", f.Type)
			return
		}
		local, branches := events.Split(b.cfg.Self, f.Paths)
		span, tc := b.startHop(f.Trace, &f, from)
		f.Trace = tc
		if local {
			// The payload aliases buf, and a delivery outlives this
			// iteration; forwarding copies it into the next frame anyway.
			f.Payload = append([]byte(nil), f.Payload...)
			if err := cloudevent.CheckStreamable(f.Payload); err != nil {
				b.m.dropped.WithLabelValues("malformed").Inc()
			} else if admitted := b.admit(from, f.Origin, f.Subject); (admitted && !b.deliverLocal(f.Kind, delivery{Subject: f.Subject, JSON: f.Payload, Trace: tracePtr(tc)})) ||
				(!admitted && f.Kind == events.Queue) {
				// Only a queue event finds no room, or is refused here
				// (a topic's refused event is just not delivered). This
				// site counts as tried even when it no longer has
				// consumers, so that sites with stale interests cannot
				// bounce an event between them.
				b.routeQueue(events.Interested(b.cfg.Net.Table(), events.Queue, f.Subject), f.Subject, f.Origin, append(f.Sites, b.cfg.Self), f.Payload, tc)
			}
		}
		for _, br := range branches {
			f.Paths = br.Paths
			b.forwardFrame(&f)
		}
		if span.IsRecording() {
			b.setNext(span, branchHeads(branches))
		}
		span.End()
	}
}

// deliverLocal hands an event to this site's subscribers: every matching one
// for a topic, one with room for a queue. It never blocks: a subscriber that
// cannot keep up loses volatile events (counted); persisted ones it re-reads
// from the inbox. It reports whether a queue event found a consumer.
func (b *Broker) deliverLocal(kind events.Kind, d delivery) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if kind == events.Queue {
		return b.deliverQueueLocked(d)
	}
	for _, s := range b.subs {
		if s.kind == kind && events.Match(s.pattern, d.Subject) && !b.offerSub(s, d) && d.Seq != 0 {
			s.miss(d.Seq)
		}
	}
	if d.Seq == 0 {
		// Push subscriptions read persisted events from the inbox.
		for _, p := range b.pushes {
			if p.kind == kind && events.Match(p.pattern, d.Subject) {
				b.offer(p.ch, d, false)
			}
		}
		for t := range b.taps {
			if t.kind == kind && events.Match(t.pattern, d.Subject) {
				b.offer(t.ch, d, true)
			}
		}
	}
	return true
}

// deliverQueueLocked gives a queue event to one local consumer with room:
// consumers take turns, a full one is skipped.
func (b *Broker) deliverQueueLocked(d delivery) bool {
	var chs []chan delivery
	for _, s := range b.subs {
		if s.kind == events.Queue && events.Match(s.pattern, d.Subject) {
			chs = append(chs, s.ch)
		}
	}
	for _, p := range b.pushes {
		if p.kind == events.Queue && events.Match(p.pattern, d.Subject) {
			chs = append(chs, p.ch)
		}
	}
	for t := range b.taps {
		if t.kind == events.Queue && events.Match(t.pattern, d.Subject) {
			chs = append(chs, t.ch)
		}
	}
	for i := range chs {
		k := (b.rr + i) % len(chs)
		select {
		case chs[k] <- d:
			b.rr = k + 1
			b.m.deliver("queue", events.Queue, d.Subject)
			return true
		default:
		}
	}
	return false
}

// offerSub reports whether subscriber s took d.
func (b *Broker) offerSub(s *subscriber, d delivery) bool {
	p := s.pend.Load()
	if p == nil {
		return b.offer(s.ch, d, true)
	}
	if p.put(d) {
		b.m.deliver("topic", events.Topic, d.Subject)
		return true
	}
	if d.Seq == 0 {
		b.m.drop("slow-consumer", events.Topic, d.Subject)
	}
	return false
}

// offer reports whether ch took d; delivers says that taking it is
// delivery. A push subscription's channel is not: deliverPush counts the
// event once its sink takes it.
func (b *Broker) offer(ch chan delivery, d delivery, delivers bool) bool {
	select {
	case ch <- d:
		if delivers {
			b.m.deliver("topic", events.Topic, d.Subject)
		}
		return true
	default:
		if d.Seq == 0 {
			b.m.drop("slow-consumer", events.Topic, d.Subject)
		}
		return false
	}
}

// publishVolatile sends events published together to one subject: the
// interested sites and the tree are worked out once for all of them.
// tcs, nil with tracing off, are the events' trace contexts.
func (b *Broker) publishVolatile(kind events.Kind, subject string, evs []cloudevent.Decoded, tcs []tracectx.Context) error {
	routes := b.interested(kind, subject)
	if kind == events.Queue {
		if len(routes) == 0 {
			return ErrNoConsumer
		}
		for i, e := range evs {
			b.routeQueue(routes, subject, b.cfg.Self, nil, e.JSON, traceAt(tcs, i))
		}
		return nil
	}
	local, branches := events.Split(b.cfg.Self, events.TreePaths(b.cfg.Self, routes))
	if local {
		for i, e := range evs {
			b.deliverLocal(kind, delivery{Subject: subject, JSON: e.JSON, Trace: tracePtr(traceAt(tcs, i))})
		}
	}
	for _, br := range branches {
		f := events.Frame{Type: events.FrameEvent, Kind: kind, Subject: subject, Origin: b.cfg.Self, Paths: br.Paths}
		// Sized once: every frame is its event and the same header.
		head := len(events.AppendFrame(nil, &f))
		if tcs != nil {
			head += tracectx.ContextSize
		}
		size := 0
		for _, e := range evs {
			size += head + binary.MaxVarintLen32 + len(e.JSON)
		}
		c := chunk{b: make([]byte, 0, size)}
		for i, e := range evs {
			f.Payload, f.Trace = e.JSON, traceAt(tcs, i)
			c.b = events.AppendFrame(c.b, &f)
		}
		c.n = len(evs)
		b.forward(br.Next, c)
	}
	return nil
}

// interested is events.Interested from this site's table, with this site
// first when one of its own consumers matches but the table does not have
// its interest yet: the site's router adds the broker's interests to the
// table some time after they change, and until then a client that
// subscribed (and was told so) would miss what is published here.
func (b *Broker) interested(kind events.Kind, subject string) []routing.SiteRoute {
	routes := events.Interested(b.cfg.Net.Table(), kind, subject)
	if slices.ContainsFunc(routes, func(r routing.SiteRoute) bool { return r.ID == b.cfg.Self }) {
		return routes
	}
	b.mu.Lock()
	mine := events.MatchesAny(b.interests, kind, subject)
	b.mu.Unlock()
	if !mine {
		return routes
	}
	return slices.Insert(routes, 0, routing.SiteRoute{ID: b.cfg.Self})
}

// routeQueue gives a volatile queue event to one consumer: here when this
// site is the first of routes (the sites interested in subject, nearest
// first) not in tried and a local consumer has room, else it sends the
// event toward the first such site, which does the same with this site
// added to tried. So a full site spills to the next nearest instead of
// dropping; once every candidate, or MaxQueueTries sites, had no room, the
// event is dropped and counted as "queue-full". tc is the event's trace
// context.
func (b *Broker) routeQueue(routes []routing.SiteRoute, subject string, origin siteid.ID, tried []siteid.ID, payload []byte, tc tracectx.Context) {
	for {
		r, ok := events.NextQueueSite(routes, tried)
		switch {
		case !ok:
			b.m.drop("queue-full", events.Queue, subject)
			return
		case r.ID != b.cfg.Self:
			b.forwardFrame(&events.Frame{Type: events.FrameEvent, Trace: tc, Kind: events.Queue, Subject: subject, Origin: origin, Paths: [][]siteid.ID{r.Path}, Sites: tried, Payload: payload})
			return
		case b.deliverLocal(events.Queue, delivery{Subject: subject, JSON: payload, Trace: tracePtr(tc)}):
			return
		}
		tried = append(tried, b.cfg.Self)
	}
}
