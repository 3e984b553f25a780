// Package queuemark is the capacity bookkeeping of persisted queues at one
// site, as a synchronous state machine. A site with a local consumer of a
// persisted queue keeps the queue's entries in its queued bucket until a
// consumer takes them. Once its consumers leave High entries waiting, it
// withdraws the queue's interest from its record, so that new entries go to
// the nearest consumer elsewhere, and it announces the interest again once
// the wait is down to Low; the gap keeps a queue near the mark from flooding
// records (spec.md in the events package, "Queue capacity").
//
// The caller drives it, under one lock, in this sequence for every batch of
// entries it is about to store for local consumers:
//
//	res, over := m.Reserve(queues) // entries with no room here overflow
//	...store the batch; overflowing entries go to the outbound log...
//	m.Stored(res, kept)            // the entries the store kept; nil if it failed
//
// and m.Taken(queue) for every entry handed to a consumer or passed on.
// When an input makes a queue full or no longer full, Ready lists it: the
// caller must announce its interests anew (leaving out the queues Full
// reports) and then call Advance. It does no I/O, takes no lock and reads no
// clock, so tests drive it step by step.
package queuemark

import (
	"maps"
	"slices"
)

// queue is the state of one queue.
type queue struct {
	// waiting counts the entries stored here that no consumer took yet. It
	// can be below zero for a moment: a worker may hand out an entry as
	// soon as the store wrote it, before Stored counts it. Clamping it at
	// zero would make it drift up by one with every such race, until the
	// site withdrew the queue for good.
	waiting int
	// reserved counts the entries of batches being stored (Reserve to
	// Stored). Counting them keeps concurrent batches, each up to a
	// thousand entries, from all fitting under the mark at once.
	reserved int
	full     bool
}

// Flip says that a queue became full (its interest must be withdrawn) or is
// no longer full (announced again).
type Flip struct {
	Queue string
	Full  bool
}

// Reservation is the room a batch holds from Reserve to Stored.
type Reservation struct{ n map[string]int }

// Marks is the state machine. The zero value is not usable: call New.
type Marks struct {
	high, low int
	queues    map[string]*queue
	flips     []Flip
}

// New returns empty bookkeeping that withdraws a queue at high waiting
// entries and announces it again at low; low must be below high.
func New(high, low int) *Marks {
	if low >= high || low < 0 {
		panic("queuemark: low water must be below high water and not negative")
	}
	return &Marks{high: high, low: low, queues: map[string]*queue{}}
}

func (m *Marks) get(name string) *queue {
	q := m.queues[name]
	if q == nil {
		q = &queue{}
		m.queues[name] = q
	}
	return q
}

// gc forgets a queue that holds nothing, so that the map stays as small as
// the set of queues with entries here.
func (m *Marks) gc(name string, q *queue) {
	if q.waiting == 0 && q.reserved == 0 && !q.full {
		delete(m.queues, name)
	}
}

// Reserve decides, for the entries of a batch about to be stored here for
// local consumers (each given by its queue's name, in batch order), which
// overflow: those that would take the queue's waiting entries, counting
// those reserved by batches being stored, to High or beyond. Overflowing
// entries are not for this site: the caller puts them in its outbound log,
// for the nearest consumer with room. The others hold room until the caller
// passes the reservation back to Stored, which it must do whether or not the
// store succeeds.
func (m *Marks) Reserve(queues []string) (Reservation, []bool) {
	var res Reservation
	over := make([]bool, len(queues))
	for i, name := range queues {
		q := m.get(name)
		if q.waiting+q.reserved >= m.high {
			over[i] = true
			m.gc(name, q)
			continue
		}
		if res.n == nil {
			res.n = map[string]int{}
		}
		res.n[name]++
		q.reserved++
	}
	return res, over
}

// Stored ends a reservation: kept names the queue of each entry that the
// store kept here (it drops duplicates, so that can be fewer than were
// reserved), nil if the store failed.
func (m *Marks) Stored(res Reservation, kept []string) {
	for name, n := range res.n {
		q := m.get(name)
		q.reserved -= n
		m.gc(name, q)
	}
	for _, name := range kept {
		m.add(name, 1)
	}
}

// Taken records that an entry of the queue left the site: a consumer took it
// or it was passed on.
func (m *Marks) Taken(queue string) { m.add(queue, -1) }

// Found records n entries of the queue waiting from before a restart.
func (m *Marks) Found(queue string, n int) { m.add(queue, n) }

func (m *Marks) add(name string, n int) {
	q := m.get(name)
	q.waiting += n
	switch {
	case !q.full && q.waiting >= m.high:
		q.full = true
		m.flip(name, true)
	case q.full && q.waiting <= m.low:
		q.full = false
		m.flip(name, false)
	}
	m.gc(name, q)
}

// flip records a change of a queue's state; a change back before Advance
// cancels it, so Ready lists only what differs from what was announced.
func (m *Marks) flip(name string, full bool) {
	if i := slices.IndexFunc(m.flips, func(f Flip) bool { return f.Queue == name }); i >= 0 {
		m.flips = slices.Delete(m.flips, i, i+1)
		return
	}
	m.flips = append(m.flips, Flip{Queue: name, Full: full})
}

// Full reports whether the queue's interest is to be left out of the site's
// record, and its own outbound entries for the queue not routed to itself.
func (m *Marks) Full(queue string) bool {
	q := m.queues[queue]
	return q != nil && q.full
}

// Counts returns a queue's waiting and reserved entries.
func (m *Marks) Counts(queue string) (waiting, reserved int) {
	if q := m.queues[queue]; q != nil {
		return q.waiting, q.reserved
	}
	return 0, 0
}

// Queues returns the names of the queues with entries waiting or reserved,
// or full, sorted.
func (m *Marks) Queues() []string {
	return slices.Sorted(maps.Keys(m.queues))
}

// Ready returns the queues that became full or no longer full since the last
// Advance, in the order they flipped.
func (m *Marks) Ready() []Flip { return slices.Clone(m.flips) }

// Advance discards what Ready returned; the caller must have announced its
// interests anew.
func (m *Marks) Advance() { m.flips = m.flips[:0] }
