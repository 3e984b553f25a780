package balance

import (
	"math"
	"time"
)

// entry is what the Picker remembers about one candidate.
type entry struct {
	limits      Limits // from the latest cands that named this key
	connections uint32
	inFlight    uint32
	lat         ewma
	errs        int         // consecutive errors since the last reset
	times       int         // times ejected, as of the end of the last ejection
	until       time.Time   // end of the last ejection; zero if never ejected
	recent      recentCount // units of work ended in the last minute
}

func (e *entry) ejected(now time.Time) bool { return now.Before(e.until) }

func (e *entry) saturated() bool {
	l := e.limits
	if l.MaxConnections > 0 && e.connections >= l.MaxConnections {
		return true
	}
	if l.MaxRequests > 0 && e.inFlight >= l.MaxRequests {
		return true
	}
	// In uint64 so that MaxConnections+MaxPending cannot wrap.
	if l.MaxConnections > 0 && l.MaxPending > 0 &&
		uint64(e.inFlight) >= uint64(l.MaxConnections)+uint64(l.MaxPending) {
		return true
	}
	return false
}

// pending is the requests in flight that, with one request per pooled
// connection, wait for one.
func (e *entry) pending() uint32 {
	if m := e.limits.MaxConnections; m > 0 && e.inFlight > m {
		return e.inFlight - m
	}
	return 0
}

// load is the outstanding work the score weighs. A TCP picker only counts
// connections and an HTTP one only requests, so adding them is exact for
// both and reasonable for a caller that mixes them.
func (e *entry) load() float64 { return float64(e.connections) + float64(e.inFlight) }

// timesEjected applies Envoy's decay lazily: one ejection is forgiven for
// each full interval spent healthy since the last ejection ended.
func (e *entry) timesEjected(now time.Time, interval time.Duration) int {
	if e.times == 0 || now.Before(e.until) {
		return e.times
	}
	healthy := int64(now.Sub(e.until) / interval)
	if healthy >= int64(e.times) {
		return 0
	}
	return e.times - int(healthy)
}

// ewma is a time-decayed peak-EWMA of latency in nanoseconds.
type ewma struct {
	ns float64
	at time.Time // time of the last sample
	ok bool      // at least one sample
}

// decay is the weight that the state at time 'from' keeps at 'to'.
func decay(from, to time.Time, halfLife time.Duration) float64 {
	dt := to.Sub(from)
	if dt <= 0 {
		return 1
	}
	return math.Exp2(-float64(dt) / float64(halfLife))
}

// value is the estimate at now, decayed toward zero since the last sample
// so that an idle candidate is eventually tried again.
func (l *ewma) value(now time.Time, halfLife time.Duration) float64 {
	return l.ns * decay(l.at, now, halfLife)
}

// observe adds a sample. A lower bound (failed or cancelled attempt) may
// only raise an existing estimate: the good answer would have taken at
// least that long, but how much longer is unknown, and a fast refusal must
// not make a candidate look fast. It does not start an estimate either,
// so an unmeasured candidate keeps the tier's neutral prior.
func (l *ewma) observe(now time.Time, sample time.Duration, lowerBound bool, halfLife time.Duration) {
	x := float64(sample)
	if !l.ok {
		if lowerBound {
			return
		}
		l.ns, l.at, l.ok = x, now, true
		return
	}
	cur := l.value(now, halfLife)
	switch {
	case x > cur:
		// Peak: degradation shows at once.
		l.ns = x
	case lowerBound:
		// Nothing learnt; keep the decay running from the old sample.
		return
	default:
		// The blend starts from the undecayed estimate: read-time decay is
		// a probing device, not evidence that the candidate got faster.
		w := decay(l.at, now, halfLife)
		l.ns = l.ns*w + x*(1-w)
	}
	if now.After(l.at) {
		l.at = now
	}
}
