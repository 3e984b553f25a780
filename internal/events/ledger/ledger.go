// Package ledger is the bookkeeping of persisted delivery at one site, as a
// synchronous state machine. The site's outbound log holds entries, each for
// a set of destination sites; the ledger keeps one cursor per destination
// (what the next hop toward it has stored) and one stream per next hop, over
// which each entry goes once with the destinations routed that way (spec.md
// in the events package). Inputs are method calls; outputs accumulate until
// Ready, and the caller must perform them (send, save) before calling
// Advance. It does no I/O and reads no clock, so tests drive it step by step.
package ledger

import (
	"maps"
	"slices"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/siteid"
)

// Dest is the state of one destination site.
type Dest struct {
	// Patterns are the destination's interests as last seen in its record;
	// they are kept while it is unreachable, so that entries published
	// meanwhile are still for it. A destination this site only forwards to
	// has none.
	Patterns []string
	// Acked is the offset up to which the next hop has stored everything
	// that was for this destination.
	Acked uint64
	sent  uint64    // offset up to which entries are in flight; >= Acked
	last  uint64    // the last offset known to hold an entry for it
	hop   siteid.ID // next hop toward it; zero while unreachable
	// settling is the former next hop of a queue's destination that
	// moved while entries for it were in flight there: nothing is sent
	// over the new hop until that stream acknowledges them or ends (Routes).
	settling siteid.ID
}

// queue reports whether the destination is a queue's pseudo-site, known by
// its patterns.
func (d *Dest) queue() bool {
	for _, in := range d.Patterns {
		if k, _, ok := events.ParseInterest(in); ok && k == events.Queue {
			return true
		}
	}
	return false
}

// Entry is one appended log entry for Appended.
type Entry struct {
	Off   uint64
	Dests []siteid.ID
}

// Send asks the caller to send, on the stream Stream to the neighbour Hop,
// each log entry in (From, To] that is for one of Dests, with the part of its
// destinations that is in Dests, and then the mark Mark. Dests is sorted.
type Send struct {
	Hop          siteid.ID
	Stream, Mark uint64
	From, To     uint64
	Dests        []siteid.ID
}

// Ready is what the caller must do.
type Ready struct {
	Sends []Send
	// Save are destinations whose cursor or patterns changed and must be
	// stored; Delete are destinations that must be removed from storage.
	Save   map[siteid.ID]Dest
	Delete []siteid.ID
}

// hop is the stream to one neighbour.
type hop struct {
	open     bool
	stream   uint64 // counts the streams opened, so acks of old ones are told apart
	mark     uint64 // last mark sent on the stream
	inflight uint64 // entries covered by unacknowledged sends
	pending  []Send
}

// Ledger is the state machine. The zero value is not usable: call New.
type Ledger struct {
	head   uint64
	window uint64
	dests  map[siteid.ID]*Dest
	hops   map[siteid.ID]*hop
	routes map[siteid.ID]siteid.ID
	rd     Ready
}

// New returns a ledger whose log ends at head, with destinations restored
// from storage. window bounds the entries in flight on one stream.
func New(head uint64, dests map[siteid.ID]Dest, window uint64) *Ledger {
	l := &Ledger{head: head, window: max(window, 1), dests: map[siteid.ID]*Dest{}, hops: map[siteid.ID]*hop{}}
	for id, d := range dests {
		// What the log holds for a restored destination is unknown: assume
		// everything up to head.
		l.dests[id] = &Dest{Patterns: slices.Clone(d.Patterns), Acked: d.Acked, sent: d.Acked, last: head}
	}
	return l
}

// Head is the offset of the last appended entry.
func (l *Ledger) Head() uint64 { return l.head }

// Dests returns a copy of every destination's state.
func (l *Ledger) Dests() map[siteid.ID]Dest {
	out := make(map[siteid.ID]Dest, len(l.dests))
	for id, d := range l.dests {
		out[id] = *d
	}
	return out
}

// Low is the offset up to which every destination has acknowledged what
// was for it: entries up to it may be dropped from the log.
func (l *Ledger) Low() uint64 {
	low := l.head
	for _, d := range l.dests {
		if d.last > d.Acked {
			low = min(low, d.Acked)
		}
	}
	return low
}

// Targets returns the destinations whose patterns match a topic subject,
// sorted: the destinations of an event published here.
func (l *Ledger) Targets(subject string) []siteid.ID {
	var out []siteid.ID
	for id, d := range l.dests {
		for _, in := range d.Patterns {
			if k, p, ok := events.ParseInterest(in); ok && k == events.Topic && events.Match(p, subject) {
				out = append(out, id)
				break
			}
		}
	}
	slices.SortFunc(out, siteid.ID.Compare)
	return out
}

// Hops returns the neighbours some destination is routed through, or waits
// on (settling), sorted: the caller must keep a stream open to each.
func (l *Ledger) Hops() []siteid.ID {
	var out []siteid.ID
	for _, d := range l.dests {
		for _, h := range []siteid.ID{d.hop, d.settling} {
			if !h.IsZero() && !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	slices.SortFunc(out, siteid.ID.Compare)
	return out
}

// Stream is the number of the current stream to a neighbour, which the
// caller passes back with its acknowledgements.
func (l *Ledger) Stream(next siteid.ID) uint64 {
	if h := l.hops[next]; h != nil {
		return h.stream
	}
	return 0
}

// Interest records a reachable site's current interests. A site seen for the
// first time becomes a destination of entries appended from now on; one with
// no interests left stops being one once it has everything that was for it.
func (l *Ledger) Interest(site siteid.ID, patterns []string) {
	d := l.dests[site]
	switch {
	case d == nil && len(patterns) == 0:
	case d == nil:
		d = &Dest{Patterns: slices.Clone(patterns), Acked: l.head, sent: l.head, last: l.head, hop: l.routes[site]}
		l.dests[site] = d
		l.save(site, d)
	case !slices.Equal(d.Patterns, patterns):
		d.Patterns = slices.Clone(patterns)
		l.save(site, d)
		l.dropIfDone(site, d)
	}
}

// Routes records the next hop toward each reachable site. A destination
// whose next hop changed is sent again from its cursor over the new one: what
// was in flight on the old one may never arrive (duplicates are dropped at
// the destination). Except a queue's: the site a duplicate reaches may not
// be the one that took the original, so both would hand it to a consumer.
// While the old stream is open, what is in flight there is left to it, and
// the queue waits until it is acknowledged, or sent again if the stream ends.
func (l *Ledger) Routes(next map[siteid.ID]siteid.ID) {
	l.routes = maps.Clone(next)
	for id, d := range l.dests {
		nh := next[id]
		switch {
		case nh == d.hop:
		case !d.settling.IsZero() && nh == d.settling:
			// Back to the stream its entries are in flight on.
			d.hop, d.settling = nh, siteid.ID{}
		case d.queue() && d.settling.IsZero() && d.sent > d.Acked && l.hops[d.hop] != nil && l.hops[d.hop].open:
			d.hop, d.settling = nh, d.hop
		case !d.settling.IsZero():
			d.hop = nh
		default:
			d.hop, d.sent = nh, d.Acked
		}
	}
	l.pumpAll()
}

// settled ends the wait of queue destinations for their former next hop
// next: lost says its stream ended, and what was in flight there must be sent
// again.
func (l *Ledger) settled(next siteid.ID, lost bool) {
	for _, d := range l.dests {
		if d.settling != next {
			continue
		}
		if lost {
			d.sent = d.Acked
		}
		if d.sent <= d.Acked {
			d.settling = siteid.ID{}
		}
	}
}

// Appended records entries appended to the log, in any order. A destination
// without a cursor gets one just before its first entry.
func (l *Ledger) Appended(es []Entry) {
	for _, e := range es {
		l.head = max(l.head, e.Off)
		for _, id := range e.Dests {
			d := l.dests[id]
			switch {
			case d == nil:
				d = &Dest{Acked: e.Off - 1, sent: e.Off - 1, hop: l.routes[id]}
				l.dests[id] = d
				l.save(id, d)
			case d.Acked >= e.Off:
				// A later entry, appended concurrently, was reported
				// first and carried the cursor past this one: go back,
				// and let no send in flight vouch for it.
				d.Acked, d.sent, d.settling = e.Off-1, e.Off-1, siteid.ID{}
				l.save(id, d)
				l.forget(id)
			}
			d.last = max(d.last, e.Off)
		}
	}
	l.pumpAll()
}

// Opened records that a stream to a neighbour is up: everything the
// destinations routed through it have not acknowledged is sent again,
// because what was in flight on an earlier stream may be lost.
func (l *Ledger) Opened(next siteid.ID) {
	h := l.hops[next]
	if h == nil {
		h = &hop{}
		l.hops[next] = h
	}
	*h = hop{open: true, stream: h.stream + 1}
	l.settled(next, true)
	for _, d := range l.dests {
		if d.hop == next {
			d.sent = d.Acked
		}
	}
	l.pump(next, h)
}

// Closed records that a stream to a neighbour ended; the end of a stream
// that a newer one replaced changes nothing.
func (l *Ledger) Closed(next siteid.ID, stream uint64) {
	if h := l.hops[next]; h != nil && h.stream == stream {
		h.open = false
		l.settled(next, true)
		l.pumpAll()
	}
}

// Acked records that the neighbour stored everything sent on stream up to
// mark. It advances the cursor of every destination of those sends, even one
// routed elsewhere since: the neighbour forwards what it stored.
func (l *Ledger) Acked(next siteid.ID, stream, mark uint64) {
	h := l.hops[next]
	if h == nil || h.stream != stream {
		return
	}
	for len(h.pending) > 0 && h.pending[0].Mark <= mark {
		s := h.pending[0]
		h.pending = h.pending[1:]
		h.inflight -= s.To - s.From
		for _, id := range s.Dests {
			if d := l.dests[id]; d != nil && d.Acked < s.To {
				d.Acked, d.sent = s.To, max(d.sent, s.To)
				l.save(id, d)
				l.dropIfDone(id, d)
			}
		}
	}
	l.settled(next, false)
	l.pumpAll()
}

// forget removes a destination from every send in flight, so that no
// acknowledgement moves its cursor.
func (l *Ledger) forget(id siteid.ID) {
	for _, h := range l.hops {
		for i, s := range h.pending {
			h.pending[i].Dests = slices.DeleteFunc(s.Dests, func(x siteid.ID) bool { return x == id })
		}
	}
}

// dropIfDone removes a destination that wants nothing more and has nothing
// left to receive.
func (l *Ledger) dropIfDone(id siteid.ID, d *Dest) {
	if len(d.Patterns) > 0 || d.Acked < d.last {
		return
	}
	delete(l.dests, id)
	delete(l.rd.Save, id)
	l.rd.Delete = append(l.rd.Delete, id)
}

func (l *Ledger) pumpAll() {
	for _, next := range l.Hops() {
		if h := l.hops[next]; h != nil {
			l.pump(next, h)
		}
	}
}

// pump sends what the window allows. Destinations at the same position share
// one send; one that lags (after a route change) is sent to alone until it
// reaches the next position, where it joins the others.
func (l *Ledger) pump(next siteid.ID, h *hop) {
	for h.open && h.inflight < l.window {
		from, to, found := uint64(0), l.head, false
		for _, d := range l.dests {
			if d.hop == next && d.settling.IsZero() && d.sent < l.head && (!found || d.sent < from) {
				from, found = d.sent, true
			}
		}
		if !found {
			return
		}
		var group []siteid.ID
		for id, d := range l.dests {
			switch {
			case d.hop != next || !d.settling.IsZero() || d.sent >= l.head:
			case d.sent == from:
				group = append(group, id)
			default:
				to = min(to, d.sent)
			}
		}
		to = min(to, from+l.window-h.inflight)
		slices.SortFunc(group, siteid.ID.Compare)
		h.mark++
		s := Send{Hop: next, Stream: h.stream, Mark: h.mark, From: from, To: to, Dests: group}
		h.pending = append(h.pending, s)
		h.inflight += to - from
		for _, id := range group {
			l.dests[id].sent = to
		}
		s.Dests = slices.Clone(group)
		l.rd.Sends = append(l.rd.Sends, s)
	}
}

func (l *Ledger) save(site siteid.ID, d *Dest) {
	if l.rd.Save == nil {
		l.rd.Save = map[siteid.ID]Dest{}
	}
	l.rd.Save[site] = Dest{Patterns: slices.Clone(d.Patterns), Acked: d.Acked}
}

// Ready returns the outputs accumulated since the last Advance.
func (l *Ledger) Ready() Ready {
	rd := l.rd
	rd.Save = maps.Clone(rd.Save)
	return rd
}

// Advance discards the outputs Ready returned; the caller must have done
// them.
func (l *Ledger) Advance() { l.rd = Ready{} }
