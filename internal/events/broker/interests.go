package broker

import (
	"slices"
	"strings"
	"time"

	"weft.dev/weft/internal/events"
)

// interest is one pattern of one kind: what a site announces for all its
// subscribers to it.
type interest struct {
	kind    events.Kind
	pattern string
}

func (in interest) String() string { return events.Interest(in.kind, in.pattern) }

// interestSet counts the interests a site holds, under MaxInterests: those
// of live subscribers and push subscriptions (held), of push subscriptions
// being stored (adding), and of stream subscribers gone whose topic
// interest lingers (streamLinger). A lingering interest is never held too:
// a new subscriber to its pattern takes it over. Every operation but an
// eviction is O(1), so a client hammering the limit cannot keep the
// broker's lock busy. It reads no clock and takes no lock: the broker
// passes the time and holds mu.
type interestSet struct {
	max       int
	held      map[interest]int
	adding    map[interest]int
	lingering map[string]time.Time // topic patterns, and when they end
	// sorted is every interest held or lingering, kept in order as they
	// come and go, so that listing them costs no sort.
	sorted []string
}

func newInterestSet(max int) *interestSet {
	return &interestSet{max: max, held: map[interest]int{}, adding: map[interest]int{}, lingering: map[string]time.Time{}}
}

// has reports whether in is counted already, so that one more subscriber
// to it adds nothing.
func (s *interestSet) has(in interest) bool {
	_, lingers := s.lingering[in.pattern]
	return s.held[in] > 0 || s.adding[in] > 0 || in.kind == events.Topic && lingers
}

// admit reports whether one more subscriber to in fits under the limit,
// with the push subscription whose interest is replacing (if set) taken out
// as it is replaced. At the limit, the lingering interests that would end
// soonest make room: lingering serves a client that reconnects, and must
// not let clients that come and go lock out every new pattern. It reports
// whether it evicted any.
func (s *interestSet) admit(in interest, replacing *interest) (ok, evicted bool) {
	if s.has(in) {
		return true, false
	}
	n := len(s.held)
	for a := range s.adding {
		if s.held[a] == 0 {
			n++
		}
	}
	if replacing != nil && s.held[*replacing] == 1 && s.adding[*replacing] == 0 {
		n-- // only the subscription being replaced holds it
	}
	if n >= s.max {
		return false, false
	}
	for n+len(s.lingering) >= s.max {
		soonest := ""
		for p, until := range s.lingering {
			if soonest == "" || until.Before(s.lingering[soonest]) {
				soonest = p
			}
		}
		s.endLinger(soonest)
		evicted = true
	}
	return true, evicted
}

func (s *interestSet) endLinger(pattern string) {
	delete(s.lingering, pattern)
	s.remove(interest{events.Topic, pattern})
}

func (s *interestSet) insert(in interest) {
	str := in.String()
	if i, found := slices.BinarySearch(s.sorted, str); !found {
		s.sorted = slices.Insert(s.sorted, i, str)
	}
}

func (s *interestSet) remove(in interest) {
	if i, found := slices.BinarySearch(s.sorted, in.String()); found {
		s.sorted = slices.Delete(s.sorted, i, i+1)
	}
}

// hold counts a subscriber to in; a lingering interest in its pattern is
// held again.
func (s *interestSet) hold(in interest) {
	if s.held[in]++; s.held[in] > 1 {
		return
	}
	if _, ok := s.lingering[in.pattern]; ok && in.kind == events.Topic {
		delete(s.lingering, in.pattern) // listed already
		return
	}
	s.insert(in)
}

// release uncounts a subscriber to in. When none is left, a topic interest
// lingers until lingerUntil, unless that is zero.
func (s *interestSet) release(in interest, lingerUntil time.Time) {
	if s.held[in]--; s.held[in] > 0 {
		return
	}
	delete(s.held, in)
	if in.kind == events.Topic && !lingerUntil.IsZero() {
		s.lingering[in.pattern] = lingerUntil // stays listed
		return
	}
	s.remove(in)
}

// reserve holds in's room while a push subscription is stored; done gives
// it back.
func (s *interestSet) reserve(in interest) { s.adding[in]++ }

func (s *interestSet) done(in interest) {
	if s.adding[in]--; s.adding[in] <= 0 {
		delete(s.adding, in)
	}
}

// expire ends the lingering interests whose time is up at now.
func (s *interestSet) expire(now time.Time) {
	for p, until := range s.lingering {
		if !until.After(now) {
			s.endLinger(p)
		}
	}
}

// list returns the interests to announce, sorted: the held and lingering
// ones, less the queues withdraws says to leave out, and never more than
// max. Only push subscriptions restored from a store written under a higher
// limit can make more; the site's record must stay valid whatever the store
// holds.
func (s *interestSet) list(withdrawn func(queue string) bool) []string {
	out := make([]string, 0, min(len(s.sorted), s.max))
	for _, str := range s.sorted {
		if len(out) == s.max {
			break
		}
		if k, p, _ := strings.Cut(str, ":"); events.Kind(k[0]) != events.Queue || !withdrawn(p) {
			out = append(out, str)
		}
	}
	return out
}
