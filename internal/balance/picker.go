package balance

import (
	"math"
	"math/rand/v2"
	"time"
)

// Key identifies a candidate. The caller chooses it (for example the ID of
// the site that serves the address) and must keep it stable, because all
// state (load, latency, ejection) hangs off it.
type Key string

// Candidate is one place that can serve the work.
type Candidate struct {
	Key Key
	// Cost is the path cost to the candidate; the cheapest tier is used
	// first.
	Cost uint64
	// Capacity is the relative weight within a tier; 0 means 1.
	Capacity uint32
	Limits   Limits
	// Suspect marks a candidate whose path is under suspicion (its first
	// link probes a peer slow to answer): it is used only when no other
	// candidate is usable, before ejected ones. Callers set it from the
	// link's state at each pick; it is undone as soon as they stop.
	Suspect bool
	// Stalled marks a suspect candidate whose first link looks stalled
	// rather than slow (its peer has not answered the probe for long, or
	// was judged silent): it is used after those only Suspect, before
	// ejected ones. It implies Suspect.
	Stalled bool
	// Silent is how long the first link of a Suspect candidate has heard
	// nothing from its peer, as of the pick; ignored unless Suspect. Of
	// the suspect candidates of a tier, or the stalled ones, only the one
	// heard from last takes part (with any heard from as recently): a
	// frozen peer's silence grows from the moment it stopped, while a live
	// one, however slow, speaks at every PING, and on a loaded machine both
	// links are often suspect or stalled at once, where latency and load,
	// which favour the idle frozen one, would send it half the work.
	Silent time.Duration
}

// Limits saturate a candidate: at a limit it is skipped and work overflows
// to the next candidate or tier until its load drops. 0 means unlimited.
// See the package doc for how MaxPending is counted.
type Limits struct {
	MaxConnections uint32
	MaxPending     uint32
	MaxRequests    uint32
}

// Status values of State.
const (
	StatusOK        = "ok"
	StatusSaturated = "saturated"
	StatusEjected   = "ejected"
)

// State is a candidate's balancing state as of some now, for status output.
type State struct {
	Key Key
	// Status is StatusOK, StatusSaturated or StatusEjected; ejected wins
	// when both apply.
	Status string
	// EjectedUntil is when an ejection in force ends; zero otherwise.
	EjectedUntil time.Time
	// EWMA is the latency estimate as the Picker uses it now (decayed);
	// zero before the first sample.
	EWMA        time.Duration
	InFlight    uint32
	Connections uint32
	// Pending is the part of InFlight that exceeds MaxConnections.
	Pending           uint32
	TimesEjected      int
	ConsecutiveErrors int
	// Recent is how many units of work ended in the last minute, and
	// Share that count's part of all candidates' in the snapshot (0 to 1).
	Recent uint64
	Share  float64
}

// Picker chooses candidates and tracks their load, latency and health.
//
// A Picker is not safe for concurrent use: the caller must hold one mutex
// around every call, so that Pick followed by Start is atomic. Use one
// Picker per address.
type Picker struct {
	cfg     Config
	policy  Policy
	rng     *rand.Rand
	entries map[Key]*entry

	// Scratch space reused across calls so that Pick does not allocate.
	ents  []*entry
	class []int8
	tier  []member
}

type member struct {
	i    int // index into cands
	e    *entry
	cap  uint64
	cost uint64
}

const (
	classSkip int8 = iota
	classUsable
	classSuspect
	classStalled
	classEjected
)

// NewPicker returns a Picker. Zero fields of cfg take their defaults. rng
// must not be nil; seed it differently per Picker (e.g. from crypto/rand at
// the composition root) so that sites do not choose in lockstep, and with a
// fixed seed in tests, where the choices are then deterministic.
func NewPicker(cfg Config, rng *rand.Rand) *Picker {
	if rng == nil {
		panic("balance: NewPicker with nil rng")
	}
	return &Picker{cfg: cfg.withDefaults(), rng: rng, entries: make(map[Key]*entry)}
}

// Config returns the configuration in force, defaults filled in.
func (p *Picker) Config() Config { return p.cfg }

// Pick returns the candidate for the next unit of work, or false when every
// candidate is saturated or excluded (the caller should refuse the work,
// as Envoy answers an overflow). exclude, which may be nil, removes
// candidates already tried. Pick does not count the work: call Start with
// the returned key under the same lock.
func (p *Picker) Pick(now time.Time, cands []Candidate, exclude func(Key) bool) (Key, bool) {
	i := p.choose(now, cands, exclude, nil)
	if i < 0 {
		return "", false
	}
	return cands[i].Key, true
}

// Order returns the candidates in failover order: each element is what
// Pick would return with the earlier ones excluded, so saturated
// candidates are left out and ejected ones come last. It consumes
// randomness like that many Picks. Prefer Pick with exclude when retrying
// after a failure, because a failure reported with Done may eject a
// candidate and change the rest of the order.
func (p *Picker) Order(now time.Time, cands []Candidate) []Key {
	taken := make([]bool, len(cands))
	var keys []Key
	for {
		i := p.choose(now, cands, nil, taken)
		if i < 0 {
			return keys
		}
		taken[i] = true
		keys = append(keys, cands[i].Key)
	}
}

// Start counts a unit of work sent to key; it makes a candidate saturated
// at its limit. Every Start must be followed by one Done with the same key
// and kind.
func (p *Picker) Start(key Key, kind Kind) {
	e := p.entry(key)
	switch kind {
	case Connection:
		if e.connections < math.MaxUint32 {
			e.connections++
		}
	case Request:
		if e.inFlight < math.MaxUint32 {
			e.inFlight++
		}
	}
}

// Done ends a unit of work counted by Start and reports its latency and
// outcome as Observe does. latency <= 0 records no sample (use it for a TCP
// connection closing long after its connect was observed). Done for a key
// the Picker no longer knows (Forget dropped it) is ignored.
func (p *Picker) Done(now time.Time, key Key, kind Kind, latency time.Duration, o Outcome) {
	e := p.entries[key]
	if e == nil {
		return
	}
	switch kind {
	case Connection:
		if e.connections > 0 {
			e.connections--
		}
	case Request:
		if e.inFlight > 0 {
			e.inFlight--
		}
	}
	e.recent.add(now)
	p.observe(now, key, e, latency, o)
}

// Observe reports a latency sample and an outcome without ending the work,
// for a TCP connection whose connect succeeded and which stays open.
// latency <= 0 records no sample. Unknown keys are ignored.
func (p *Picker) Observe(now time.Time, key Key, latency time.Duration, o Outcome) {
	if e := p.entries[key]; e != nil {
		p.observe(now, key, e, latency, o)
	}
}

func (p *Picker) observe(now time.Time, key Key, e *entry, latency time.Duration, o Outcome) {
	if latency > 0 {
		lowerBound := o != Success && o != ClientError
		e.lat.observe(now, latency, lowerBound, p.cfg.EWMAHalfLife)
	}
	if e.ejected(now) {
		// Answers to work sent before the ejection (or in the fallback)
		// neither lengthen nor end it; Envoy likewise does not count
		// while a host is out.
		return
	}
	switch {
	case o.isError():
		e.errs++
		if t := p.cfg.Outlier.ConsecutiveErrors; t > 0 && e.errs >= t {
			p.tryEject(now, key, e)
		}
	case o == Success || o == ClientError:
		e.errs = 0
	}
}

// tryEject ejects e unless the cap or the last-one rule forbids it; then
// the error run is kept so that the next error tries again.
func (p *Picker) tryEject(now time.Time, key Key, e *entry) {
	pct := p.cfg.Outlier.MaxEjectionPercent
	if pct < 0 {
		return
	}
	ejected, otherUsable := 0, false
	for k, x := range p.entries {
		switch {
		case x.ejected(now):
			ejected++
		case k != key && !x.saturated():
			otherUsable = true
		}
	}
	if !otherUsable {
		return
	}
	if ejected > 0 && (ejected+1)*100 > pct*len(p.entries) {
		return
	}
	o := p.cfg.Outlier
	times := e.timesEjected(now, o.Interval) + 1
	d := o.MaxEjection
	if int64(times) <= int64(o.MaxEjection/o.BaseEjection) {
		d = o.BaseEjection * time.Duration(times)
	}
	e.times, e.until, e.errs = times, now.Add(d), 0
}

// Snapshot returns the state of each candidate, in the order of cands.
func (p *Picker) Snapshot(now time.Time, cands []Candidate) []State {
	ents := p.sync(cands)
	out := make([]State, len(cands))
	for i, c := range cands {
		e := ents[i]
		s := State{
			Key:               c.Key,
			Status:            StatusOK,
			InFlight:          e.inFlight,
			Connections:       e.connections,
			Pending:           e.pending(),
			TimesEjected:      e.timesEjected(now, p.cfg.Outlier.Interval),
			ConsecutiveErrors: e.errs,
			Recent:            e.recent.total(now),
		}
		if e.lat.ok {
			s.EWMA = time.Duration(e.lat.value(now, p.cfg.EWMAHalfLife))
		}
		switch {
		case e.ejected(now):
			s.Status, s.EjectedUntil = StatusEjected, e.until
		case e.saturated():
			s.Status = StatusSaturated
		}
		out[i] = s
	}
	var total uint64
	for _, s := range out {
		total += s.Recent
	}
	if total > 0 {
		for i := range out {
			out[i].Share = float64(out[i].Recent) / float64(total)
		}
	}
	return out
}

// Forget drops the state of every known key for which keep returns false.
// Work still in flight for a dropped key is forgotten too: its Done is
// ignored, and a later reappearance starts from scratch.
func (p *Picker) Forget(keep func(Key) bool) {
	for k := range p.entries {
		if !keep(k) {
			delete(p.entries, k)
		}
	}
}

func (p *Picker) entry(key Key) *entry {
	e := p.entries[key]
	if e == nil {
		e = &entry{}
		p.entries[key] = e
	}
	return e
}

// sync records the candidates' current limits and returns their entries,
// index for index, in scratch space valid until the next call.
func (p *Picker) sync(cands []Candidate) []*entry {
	p.ents = p.ents[:0]
	for _, c := range cands {
		e := p.entry(c.Key)
		e.limits = c.Limits
		p.ents = append(p.ents, e)
	}
	return p.ents
}

// choose returns the index in cands of the chosen candidate, or -1.
// Candidates that exclude rejects or that taken marks are skipped.
func (p *Picker) choose(now time.Time, cands []Candidate, exclude func(Key) bool, taken []bool) int {
	ents := p.sync(cands)
	p.class = p.class[:0]
	// The cheapest cost of each class present.
	var (
		have  [classEjected + 1]bool
		costs [classEjected + 1]uint64
	)
	for i, c := range cands {
		cl := classSkip
		switch e := ents[i]; {
		case taken != nil && taken[i], exclude != nil && exclude(c.Key), e.saturated():
		case e.ejected(now):
			cl = classEjected
		case c.Stalled:
			cl = classStalled
		case c.Suspect:
			cl = classSuspect
		default:
			cl = classUsable
		}
		if cl != classSkip && (!have[cl] || c.Cost < costs[cl]) {
			have[cl], costs[cl] = true, c.Cost
		}
		p.class = append(p.class, cl)
	}
	want := classSkip
	for cl := classUsable; cl <= classEjected; cl++ {
		if have[cl] {
			want = cl
			break
		}
	}
	if want == classSkip {
		return -1
	}
	cost := costs[want]
	oneTier := p.policy.Mode != ByCost
	inTier := func(i int) bool { return p.class[i] == want && (cands[i].Cost == cost || oneTier) }
	silentFor := time.Duration(math.MaxInt64)
	heard := want == classSuspect || want == classStalled
	if heard {
		for i, c := range cands {
			if inTier(i) {
				silentFor = min(silentFor, c.Silent)
			}
		}
	}

	p.tier = p.tier[:0]
	var total uint64
	for i, c := range cands {
		if !inTier(i) || heard && c.Silent > silentFor {
			continue
		}
		w := uint64(c.Capacity)
		if w == 0 {
			w = 1
		}
		total += w
		p.tier = append(p.tier, member{i: i, e: ents[i], cap: w, cost: c.Cost})
	}
	if len(p.tier) == 1 {
		return p.tier[0].i
	}

	// Two distinct draws weighted by capacity.
	a := p.draw(p.rng.Uint64N(total), -1)
	b := p.draw(p.rng.Uint64N(total-p.tier[a].cap), a)

	meanCap := float64(total) / float64(len(p.tier))
	prior := -1.0 // computed only when a drawn candidate is unmeasured
	score := func(m member) float64 {
		var lat float64
		if m.e.lat.ok {
			lat = m.e.lat.value(now, p.cfg.EWMAHalfLife)
		} else {
			if prior < 0 {
				prior = p.prior(now)
			}
			lat = prior
		}
		if p.policy.Mode == ByCostLatency && m.e.lat.ok {
			// Not on the prior: an unmeasured costly candidate would
			// then never win a comparison, and never get measured.
			lat += float64(m.cost) * float64(p.policy.CostPenalty)
		}
		// A floor keeps the load term alive when estimates have decayed
		// to (or underflowed at) zero.
		lat = max(lat, 1)
		return lat * (1 + m.e.load()*meanCap/float64(m.cap))
	}
	// Ties go to the first draw, which is capacity-weighted: that is what
	// makes idle shares follow capacity.
	if score(p.tier[b]) < score(p.tier[a]) {
		return p.tier[b].i
	}
	return p.tier[a].i
}

// draw maps r in [0, total of the tier without skip) to a tier index.
func (p *Picker) draw(r uint64, skip int) int {
	for j, m := range p.tier {
		if j == skip {
			continue
		}
		if r < m.cap {
			return j
		}
		r -= m.cap
	}
	panic("balance: draw out of range") // r < total by construction
}

// prior is the latency assumed for an unmeasured tier member: the mean
// estimate of the measured ones, or a constant when none is (every member
// then scores on load alone).
func (p *Picker) prior(now time.Time) float64 {
	var sum float64
	n := 0
	for _, m := range p.tier {
		if m.e.lat.ok {
			sum += m.e.lat.value(now, p.cfg.EWMAHalfLife)
			n++
		}
	}
	if n == 0 {
		return 1
	}
	return sum / float64(n)
}

// Reasons Skipped gives for a candidate passed over.
const (
	SkipTried     = "tried"     // excluded by the caller: tried already
	SkipSaturated = "saturated" // at a limit; the work overflows
	SkipEjected   = "ejected"   // ejected by outlier detection
	SkipSuspect   = "suspect"   // its path's first link is under suspicion
	SkipStalled   = "stalled"   // ... and looks stalled, the chosen one not
	SkipSilent    = "silent"    // as suspect as the chosen one, silent for longer
)

// Skipped calls skip with each candidate of cands, other than chosen, that
// Pick passed over for a reason of its own (a Skip* reason), as of now:
// those it took for no better than chosen are not reported. Call it under
// the same lock as the Pick, before Start, with the same exclude; it
// changes nothing.
func (p *Picker) Skipped(now time.Time, cands []Candidate, exclude func(Key) bool, chosen Key, skip func(Key, string)) {
	var ch Candidate
	for _, c := range cands {
		if c.Key == chosen {
			ch = c
		}
	}
	for _, c := range cands {
		e := p.entries[c.Key]
		switch {
		case c.Key == chosen:
		case exclude != nil && exclude(c.Key):
			skip(c.Key, SkipTried)
		case e == nil:
		case e.saturated():
			skip(c.Key, SkipSaturated)
		case e.ejected(now):
			skip(c.Key, SkipEjected)
		case c.Suspect && !ch.Suspect:
			skip(c.Key, SkipSuspect)
		case c.Stalled && !ch.Stalled:
			skip(c.Key, SkipStalled)
		case c.Suspect && c.Stalled == ch.Stalled && c.Silent > ch.Silent && (c.Cost == ch.Cost || p.policy.Mode != ByCost):
			skip(c.Key, SkipSilent)
		}
	}
}
