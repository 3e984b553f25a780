package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/ledger"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/routing"
)

// peerOut is the volatile stream to one neighbour: frames are queued and
// written by one goroutine; a full queue drops (volatile is at most once and
// must not stall the publisher or the transit site).
type peerOut struct {
	ch chan []byte
}

const peerQueue = 8192

// forward queues a FrameEvent for the neighbour at paths[*][0].
func (b *Broker) forward(kind events.Kind, subject string, origin routing.SiteID, paths [][]routing.SiteID, payload []byte) {
	next := paths[0][0]
	frame := events.AppendFrame(nil, &events.Frame{Type: events.FrameEvent, Kind: kind, Subject: subject, Origin: origin, Paths: paths, Payload: payload})
	b.mu.Lock()
	p := b.peers[next]
	if p == nil && b.ctx != nil && b.ctx.Err() == nil {
		p = &peerOut{ch: make(chan []byte, peerQueue)}
		b.peers[next] = p
		b.goFunc(func() { b.runPeerOut(next, p) })
	}
	b.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case p.ch <- frame:
		b.m.forwarded.WithLabelValues("volatile").Inc()
	default:
		b.m.dropped.WithLabelValues("link-queue-full").Inc()
	}
}

// runPeerOut writes queued frames to the neighbour, opening the stream on
// demand. When the stream fails, what was queued for it is dropped and the
// next frame opens a new one; idle for a minute, the writer ends.
func (b *Broker) runPeerOut(peer routing.SiteID, p *peerOut) {
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
	idle := time.NewTimer(time.Minute)
	defer idle.Stop()
	for {
		var f []byte
		select {
		case <-b.ctx.Done():
			return
		case <-idle.C:
			return
		case f = <-p.ch:
		}
		idle.Reset(time.Minute)
		if conn == nil {
			ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
			c, err := b.cfg.Net.Open(ctx, []routing.SiteID{peer}, TagTree)
			cancel()
			if err != nil {
				b.m.dropped.WithLabelValues("no-link").Inc()
				continue
			}
			conn, w = c, bufio.NewWriterSize(c, 64<<10)
		}
		_, err := w.Write(f)
		// Batch whatever else is queued into the same flush.
		for err == nil && len(p.ch) > 0 {
			_, err = w.Write(<-p.ch)
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			b.m.dropped.WithLabelValues("link-broken").Inc()
			conn.Close()
			conn = nil
		}
	}
}

// ServeStream serves an event stream another site opened to this one.
func (b *Broker) ServeStream(c net.Conn, tag string, origin routing.SiteID) {
	defer c.Close()
	switch tag {
	case TagTree:
		b.serveTree(c)
	case TagLog:
		b.serveLog(c, origin)
	}
}

func (b *Broker) serveTree(c net.Conn) {
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
		// The payload aliases buf: copy what outlives this iteration.
		payload := append([]byte(nil), f.Payload...)
		if local {
			if _, err := cloudevent.Unmarshal(payload); err != nil {
				b.m.dropped.WithLabelValues("malformed").Inc()
			} else {
				b.deliverLocal(f.Kind, delivery{Subject: f.Subject, JSON: payload})
			}
		}
		for _, br := range branches {
			b.forward(f.Kind, f.Subject, f.Origin, br.Paths, payload)
		}
	}
}

// serveLog is the receiving end of persisted delivery: it stores what
// arrives, in batches, and acknowledges each batch only once it is stored.
func (b *Broker) serveLog(c net.Conn, origin routing.SiteID) {
	r := bufio.NewReaderSize(c, 256<<10)
	var buf []byte
	for {
		var batch []store.Received
		for len(batch) < 1024 {
			f, nb, err := events.ReadFrame(r, buf)
			buf = nb
			if err != nil {
				return
			}
			switch f.Type {
			case events.FrameData:
				e, err := cloudevent.Unmarshal(f.Payload)
				if err != nil {
					b.log.Warn("malformed persisted event; closing the stream", "err", err)
					return
				}
				batch = append(batch, store.Received{Off: f.Offset, Source: e.Source(), ID: e.ID(),
					Entry: store.Entry{Kind: byte(f.Kind), Subject: f.Subject, Time: time.Now().UnixNano(), Payload: append([]byte(nil), f.Payload...)}})
			case events.FrameMark:
				batch = append(batch, store.Received{Off: f.Offset, Mark: true})
			default:
				b.log.Warn("unexpected frame on a log stream; closing it", "type", f.Type)
				return
			}
			if r.Buffered() == 0 {
				break
			}
		}
		if err := b.st.Receive(origin, batch); err != nil {
			b.log.Error("cannot store received events", "err", err)
			return
		}
		grew := false
		for _, rv := range batch {
			if rv.Seq != 0 {
				grew = true
				b.deliverLocal(events.Kind(rv.Entry.Kind), delivery{Seq: rv.Seq, Subject: rv.Entry.Subject, JSON: rv.Entry.Payload})
			}
		}
		if grew {
			b.inboxGrew()
		}
		ack := events.AppendFrame(nil, &events.Frame{Type: events.FrameAck, Offset: batch[len(batch)-1].Off})
		if _, err := c.Write(ack); err != nil {
			return
		}
	}
}

// ledgerDo runs inputs through the ledger and carries out its outputs: saves
// first (a cursor must be stored before it is relied on), then sends.
func (b *Broker) ledgerDo(step func(l *ledger.Ledger)) {
	b.lmu.Lock()
	step(b.ledger)
	rd := b.ledger.Ready()
	b.ledger.Advance()
	save := map[routing.SiteID]store.Dest{}
	for id, d := range rd.Save {
		save[id] = store.Dest{Patterns: d.Patterns, Acked: d.Acked}
	}
	if err := b.st.SaveDests(save, rd.Delete); err != nil {
		b.log.Error("cannot save delivery cursors", "err", err)
	}
	for _, id := range rd.Delete {
		if d := b.dests[id]; d != nil {
			d.cancel()
			delete(b.dests, id)
		}
	}
	for id := range b.ledger.Dests() {
		if b.dests[id] == nil && b.ctx != nil && b.ctx.Err() == nil {
			ctx, cancel := context.WithCancel(b.ctx)
			d := &destOut{site: id, sends: make(chan ledger.Send, ledgerWindow), cancel: cancel}
			b.dests[id] = d
			b.goFunc(func() { b.runDest(ctx, d) })
		}
	}
	for _, s := range rd.Sends {
		if d := b.dests[s.Site]; d != nil {
			// Never blocks: every send covers at least one entry of the
			// window, and the channel holds a whole window.
			d.sends <- s
		}
	}
	b.lmu.Unlock()
}

// TableChanged tells the broker that routes or records changed: reachable
// sites' topic interests become the ledger's destinations.
func (b *Broker) TableChanged() {
	if b.ctx == nil {
		return
	}
	t := b.cfg.Net.Table()
	b.ledgerDo(func(l *ledger.Ledger) {
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
	})
}

// destOut keeps the log stream to one destination site.
type destOut struct {
	site   routing.SiteID
	sends  chan ledger.Send
	cancel context.CancelFunc
}

// runDest keeps a log stream open to the destination while its route
// exists, sends what the ledger asks, and feeds acknowledgements back.
func (b *Broker) runDest(ctx context.Context, d *destOut) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		r, ok := b.cfg.Net.Table().Route(d.site)
		var err error
		if ok && len(r.Path) > 0 {
			err = b.destSession(ctx, d, r.Path)
			if err == nil {
				backoff = 100 * time.Millisecond
			}
		}
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		backoff = min(backoff*2, 2*time.Second)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

func (b *Broker) destSession(ctx context.Context, d *destOut, path []routing.SiteID) error {
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := b.cfg.Net.Open(octx, path, TagLog)
	cancel()
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
	// cursor anyway.
	for len(d.sends) > 0 {
		<-d.sends
	}
	b.ledgerDo(func(l *ledger.Ledger) { l.Opened(d.site) })
	defer b.ledgerDo(func(l *ledger.Ledger) { l.Closed(d.site) })
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
			b.ledgerDo(func(l *ledger.Ledger) { l.Acked(d.site, f.Offset) })
		}
	}()
	w := bufio.NewWriterSize(c, 256<<10)
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
		case s = <-d.sends:
		}
		var frame []byte
		var werr error
		err := b.st.ReadOut(s.From, s.To, func(off uint64, e store.Entry) bool {
			if !wants(s.Patterns, events.Kind(e.Kind), e.Subject) {
				return true
			}
			frame = events.AppendFrame(frame[:0], &events.Frame{Type: events.FrameData, Kind: events.Kind(e.Kind), Subject: e.Subject, Origin: b.cfg.Self, Offset: off, Payload: e.Payload})
			_, werr = w.Write(frame)
			b.m.forwarded.WithLabelValues("persisted").Inc()
			return werr == nil
		})
		if err == nil {
			err = werr
		}
		if err == nil {
			_, err = w.Write(events.AppendFrame(frame[:0], &events.Frame{Type: events.FrameMark, Offset: s.To}))
		}
		if err == nil && len(d.sends) == 0 {
			err = w.Flush()
		}
		if err != nil {
			return err
		}
	}
}

func wants(interests []string, k events.Kind, subject string) bool {
	for _, in := range interests {
		if ik, p, ok := events.ParseInterest(in); ok && ik == k && events.Match(p, subject) {
			return true
		}
	}
	return false
}
