// Package ledger is the bookkeeping of persisted delivery at a publishing site,
// as a synchronous state machine: the log's head, one cursor per destination
// site (what it acknowledged, what is in flight), and which destinations want
// what. Inputs are method calls; outputs accumulate until Ready, and the
// caller must perform them (send, save) before calling Advance. It does no
// I/O and reads no clock, so tests drive it step by step.
package ledger

import (
	"maps"
	"slices"

	"weft.dev/weft/internal/routing"
)

// Dest is the state of one destination site.
type Dest struct {
	// Patterns are the destination's interests as last seen in its record;
	// they are kept while it is unreachable, so entries published meanwhile
	// are still for it.
	Patterns []string
	// Acked is the offset up to which the destination has stored everything
	// that was for it.
	Acked uint64
	sent  uint64 // offset up to which entries are in flight; >= Acked
	open  bool   // a stream to the destination is up
}

// Send asks the caller to send the log entries in (From, To] to Site, those
// whose subject matches the destination's patterns, and then a mark of To so
// that the destination acknowledges even if none matched.
type Send struct {
	Site     routing.SiteID
	From, To uint64
	Patterns []string
}

// Ready is what the caller must do.
type Ready struct {
	Sends []Send
	// Save are destinations whose cursor or patterns changed and must be
	// stored; Delete are destinations that must be removed from storage.
	Save   map[routing.SiteID]Dest
	Delete []routing.SiteID
}

// Ledger is the state machine. The zero value is not usable: call New.
type Ledger struct {
	head   uint64
	window uint64
	dests  map[routing.SiteID]*Dest
	rd     Ready
}

// New returns a ledger whose log ends at head, with destinations restored
// from storage. window bounds the entries in flight to one destination.
func New(head uint64, dests map[routing.SiteID]Dest, window uint64) *Ledger {
	l := &Ledger{head: head, window: max(window, 1), dests: map[routing.SiteID]*Dest{}}
	for id, d := range dests {
		d.Patterns = slices.Clone(d.Patterns)
		d.sent, d.open = d.Acked, false
		l.dests[id] = &d
	}
	return l
}

// Head is the offset of the last appended entry.
func (l *Ledger) Head() uint64 { return l.head }

// Dests returns a copy of every destination's state.
func (l *Ledger) Dests() map[routing.SiteID]Dest {
	out := make(map[routing.SiteID]Dest, len(l.dests))
	for id, d := range l.dests {
		out[id] = *d
	}
	return out
}

// Low is the smallest offset some destination has not acknowledged, minus
// one: entries up to it may be dropped from the log.
func (l *Ledger) Low() uint64 {
	low := l.head
	for _, d := range l.dests {
		low = min(low, d.Acked)
	}
	return low
}

// Appended records that the log now ends at off.
func (l *Ledger) Appended(off uint64) {
	if off <= l.head {
		return
	}
	l.head = off
	for id, d := range l.dests {
		l.pump(id, d)
	}
}

// Interest records a reachable site's current interests. A site seen for the
// first time gets entries appended from now on; one with no interests left
// stops being a destination.
func (l *Ledger) Interest(site routing.SiteID, patterns []string) {
	d := l.dests[site]
	switch {
	case len(patterns) == 0 && d != nil:
		delete(l.dests, site)
		delete(l.rd.Save, site)
		l.rd.Delete = append(l.rd.Delete, site)
	case len(patterns) == 0:
	case d == nil:
		d = &Dest{Patterns: slices.Clone(patterns), Acked: l.head, sent: l.head}
		l.dests[site] = d
		l.save(site, d)
	case !slices.Equal(d.Patterns, patterns):
		d.Patterns = slices.Clone(patterns)
		l.save(site, d)
	}
}

// Opened records that a stream to site is up: everything it has not
// acknowledged is sent again, because what was in flight on an earlier
// stream may be lost.
func (l *Ledger) Opened(site routing.SiteID) {
	d := l.dests[site]
	if d == nil {
		return
	}
	d.open, d.sent = true, d.Acked
	l.pump(site, d)
}

// Closed records that the stream to site ended.
func (l *Ledger) Closed(site routing.SiteID) {
	if d := l.dests[site]; d != nil {
		d.open = false
	}
}

// Acked records that site stored everything for it up to off.
func (l *Ledger) Acked(site routing.SiteID, off uint64) {
	d := l.dests[site]
	if d == nil || off <= d.Acked {
		return
	}
	// An acknowledgement past what was sent is a confused peer; it
	// acknowledges no more than it was sent.
	d.Acked = min(off, d.sent)
	l.save(site, d)
	l.pump(site, d)
}

func (l *Ledger) pump(site routing.SiteID, d *Dest) {
	if !d.open || d.sent >= l.head || d.sent-d.Acked >= l.window {
		return
	}
	to := min(l.head, d.Acked+l.window)
	l.rd.Sends = append(l.rd.Sends, Send{Site: site, From: d.sent, To: to, Patterns: slices.Clone(d.Patterns)})
	d.sent = to
}

func (l *Ledger) save(site routing.SiteID, d *Dest) {
	if l.rd.Save == nil {
		l.rd.Save = map[routing.SiteID]Dest{}
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
