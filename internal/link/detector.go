package link

import (
	"math"
	"slices"
	"sync"
)

// detector learns how regularly the peer's PINGs arrive and from that how
// long a silence may last before the peer is taken for dead: phi accrual
// (Hayashibara et al.) as Cassandra and Akka use it, reduced to the
// threshold it implies. A peer whose PINGs come every 500 ms give or take a
// few is declared dead well before a fixed DeadAfter of 2 s; on a loaded
// machine the measured jitter widens the timeout by itself, never past
// DeadAfter. Times are ns on the session's clock; the detector reads no
// clock, so tests feed it arrivals step by step.
type detector struct {
	mu        sync.Mutex
	intervals samples // the last PING inter-arrival times
	last      int64   // arrival of the last PING; -1 before the first
}

const (
	// detectorWindow is how many inter-arrival times the mean and
	// deviation are taken over: about 50 s of PINGs at the default
	// interval, long enough to have seen the machine's load come and go.
	detectorWindow = 100
	// detectorMinSamples is how many intervals it takes before the
	// detector judges at all; until then DeadAfter does.
	detectorMinSamples = 8
	// phiSigmas is how many standard deviations past the mean a silence
	// must last: phi = 8 for a normal distribution, a false suspicion
	// once in 10^8 intervals if jitter were normal (it has longer tails,
	// hence the floors below).
	phiSigmas = 5.6
	// stallQuantile is the share of measured round trips shorter than a
	// probe's stall bound before its margin (probe.go): a stall notice
	// costs the opener a second attempt elsewhere, not the link, so it
	// may be wrong now and then, unlike the verdicts.
	stallQuantile = 0.9
)

func newDetector() *detector { return &detector{last: -1} }

// ping records the arrival of a PING from the peer at now.
func (d *detector) ping(now int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last >= 0 && now > d.last {
		d.intervals.add(now - d.last)
	}
	d.last = now
}

// timeout is how long a silence may last, from the last frame of any kind,
// before the peer is dead: the mean PING interval, plus pause (jitter the
// statistics have not seen, such as a GC pause or a burst of load), plus
// phiSigmas standard deviations, each at least minSigma. It is at most
// ceiling (DeadAfter), and is ceiling until enough PINGs were measured.
func (d *detector) timeout(pause, minSigma, ceiling int64) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.intervals.limit(pause, minSigma, ceiling)
}

// samples is a ring of the last detectorWindow measurements (ns) and the
// phi-accrual threshold they imply; the caller locks.
type samples struct {
	v       [detectorWindow]int64
	n, next int
}

func (w *samples) add(v int64) {
	w.v[w.next] = v
	w.next = (w.next + 1) % detectorWindow
	w.n = min(w.n+1, detectorWindow)
}

// quantile is the q-quantile (0 < q < 1) of the measurements: the
// smallest that at least q of them do not exceed.
func (w *samples) quantile(q float64) int64 {
	s := slices.Clone(w.v[:w.n])
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return s[min(int(math.Ceil(q*float64(len(s))))-1, len(s)-1)]
}

// limit is mean + phiSigmas × max(deviation, minSigma) + pause, at most
// ceiling, and ceiling until detectorMinSamples were measured.
func (w *samples) limit(pause, minSigma, ceiling int64) int64 {
	if w.n < detectorMinSamples {
		return ceiling
	}
	var sum float64
	for _, v := range w.v[:w.n] {
		sum += float64(v)
	}
	mean := sum / float64(w.n)
	var sq float64
	for _, v := range w.v[:w.n] {
		sq += (float64(v) - mean) * (float64(v) - mean)
	}
	sigma := max(math.Sqrt(sq/float64(w.n)), float64(minSigma))
	return min(int64(mean+phiSigmas*sigma)+pause, ceiling)
}
