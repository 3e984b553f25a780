package balance

import "time"

// Policy says how candidates of different path cost compete.
//
// ByCost, the default, is the package doc's tiers: the cheapest tier that
// holds a usable candidate takes all the work, and latency only ranks
// within it. ByLatency puts every usable candidate in one tier whatever
// its cost, so power of two choices over peak-EWMA latency decides: a
// cheap candidate that answers in 800 ms loses the work to a costly one
// that answers in 20 ms, and wins it back once its decayed estimate gets
// it probed again and it answers fast (the latency measured at the
// ingress is end to end, so it includes the path's RTT). ByCostLatency
// does the same with each candidate's latency raised by CostPenalty per
// unit of path cost, so that a costly path must be that much faster to
// win. Limits, saturation, overflow and ejection apply as under ByCost:
// only usable candidates compete, and the ejected ones come in only when
// none is usable.
type Policy struct {
	Mode PolicyMode
	// CostPenalty (ByCostLatency) is the latency one unit of path cost is
	// worth. 0 means DefaultCostPenalty.
	CostPenalty time.Duration
}

// PolicyMode is how a Policy ranks.
type PolicyMode uint8

const (
	ByCost PolicyMode = iota
	ByLatency
	ByCostLatency
)

// DefaultCostPenalty is ByCostLatency's latency per unit of path cost: a
// link of cost 10 (a remote cloud, by weft's convention) must be 10 ms
// faster to win.
const DefaultCostPenalty = time.Millisecond

// SetPolicy sets how the Picker ranks candidates from now on.
func (p *Picker) SetPolicy(pol Policy) {
	if pol.CostPenalty <= 0 {
		pol.CostPenalty = DefaultCostPenalty
	}
	p.policy = pol
}

// shareWindow is the time over which State.Recent counts answers.
const shareWindow = time.Minute

// shareBuckets split shareWindow; the count is exact to one bucket.
const shareBuckets = 6

// recentCount counts events in the last shareWindow, in buckets of
// shareWindow/shareBuckets. The zero value is empty.
type recentCount struct {
	start  time.Time // start of the newest bucket
	counts [shareBuckets]uint64
	newest int
}

const shareBucket = shareWindow / shareBuckets

// roll moves the window to now, dropping buckets older than it.
func (r *recentCount) roll(now time.Time) {
	if r.start.IsZero() {
		r.start = now.Truncate(shareBucket)
		return
	}
	for steps := 0; now.Sub(r.start) >= shareBucket && steps <= shareBuckets; steps++ {
		r.start = r.start.Add(shareBucket)
		r.newest = (r.newest + 1) % shareBuckets
		r.counts[r.newest] = 0
	}
	if now.Sub(r.start) >= shareBucket { // idle for longer than the window
		r.start = now.Truncate(shareBucket)
	}
}

func (r *recentCount) add(now time.Time) {
	r.roll(now)
	r.counts[r.newest]++
}

func (r *recentCount) total(now time.Time) uint64 {
	r.roll(now)
	var n uint64
	for _, c := range r.counts {
		n += c
	}
	return n
}
