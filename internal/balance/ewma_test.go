package balance

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

func TestEWMA(t *testing.T) {
	const h = 5 * time.Second
	ms := func(f float64) float64 { return f * float64(time.Millisecond) }
	near := func(t *testing.T, what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > want*1e-9 {
			t.Fatalf("%s = %.4gms, want %.4gms", what, got/1e6, want/1e6)
		}
	}
	t.Run("peak rises at once, falls by half-life", func(t *testing.T) {
		var l ewma
		l.observe(t0, 10*time.Millisecond, false, h)
		near(t, "first", l.value(t0, h), ms(10))
		l.observe(t0, 80*time.Millisecond, false, h)
		near(t, "peak", l.value(t0, h), ms(80))
		// A lower sample one half-life later weighs one half.
		l.observe(t0.Add(h), 20*time.Millisecond, false, h)
		near(t, "blend", l.ns, ms(50))
		// Many quick samples move it by time, not by count.
		l2 := l
		for i := range 100 {
			l2.observe(t0.Add(h+time.Duration(i+1)*time.Millisecond), 20*time.Millisecond, false, h)
		}
		if l2.ns < ms(49) {
			t.Fatalf("100 samples in 100ms moved the estimate to %.2fms", l2.ns/1e6)
		}
	})
	t.Run("idle decay", func(t *testing.T) {
		var l ewma
		l.observe(t0, 40*time.Millisecond, false, h)
		near(t, "after 1 half-life", l.value(t0.Add(h), h), ms(20))
		near(t, "after 2 half-lives", l.value(t0.Add(2*h), h), ms(10))
		near(t, "before the sample", l.value(t0.Add(-time.Second), h), ms(40))
	})
	t.Run("lower bounds only raise", func(t *testing.T) {
		var l ewma
		l.observe(t0, 500*time.Millisecond, true, h)
		if l.ok {
			t.Fatal("a lower bound started an estimate")
		}
		l.observe(t0, 30*time.Millisecond, false, h)
		l.observe(t0.Add(h), time.Millisecond, true, h)
		near(t, "after a fast failure", l.ns, ms(30))
		l.observe(t0.Add(h), 200*time.Millisecond, true, h)
		near(t, "after a slow cancel", l.ns, ms(200))
	})
}

// sim drives a Picker with open-loop arrivals and per-candidate latencies,
// and returns how many requests each candidate got.
type sim struct {
	p       *Picker
	cands   []Candidate
	now     time.Time
	latency func(k Key, now time.Time) time.Duration
	pending []simDone // sorted by at
	counts  map[Key]int
}

type simDone struct {
	at  time.Time
	key Key
	lat time.Duration
}

func newSim(p *Picker, cands []Candidate, latency func(Key, time.Time) time.Duration) *sim {
	return &sim{p: p, cands: cands, now: t0, latency: latency, counts: map[Key]int{}}
}

// run sends one request every gap for d.
func (s *sim) run(d, gap time.Duration) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		s.now = s.now.Add(gap)
		for len(s.pending) > 0 && !s.pending[0].at.After(s.now) {
			x := s.pending[0]
			s.pending = s.pending[1:]
			s.p.Done(x.at, x.key, Request, x.lat, Success)
		}
		k, ok := s.p.Pick(s.now, s.cands, nil)
		if !ok {
			panic("no candidate")
		}
		s.p.Start(k, Request)
		s.counts[k]++
		lat := s.latency(k, s.now)
		x := simDone{at: s.now.Add(lat), key: k, lat: lat}
		i, _ := slices.BinarySearchFunc(s.pending, x, func(a, b simDone) int { return a.at.Compare(b.at) })
		s.pending = slices.Insert(s.pending, i, x)
	}
}

func (s *sim) share(k Key) float64 {
	total := 0
	for _, n := range s.counts {
		total += n
	}
	return float64(s.counts[k]) / float64(total)
}

func twoCands() []Candidate { return []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 1}} }

func fixed(a, b time.Duration) func(Key, time.Time) time.Duration {
	return func(k Key, _ time.Time) time.Duration {
		if k == "a" {
			return a
		}
		return b
	}
}

func TestEWMAAdaptation(t *testing.T) {
	ms := time.Millisecond
	t.Run("equal latency shares evenly", func(t *testing.T) {
		s := newSim(newPicker(Config{}, 1), twoCands(), fixed(20*ms, 20*ms))
		s.run(60*time.Second, 5*ms)
		if sh := s.share("b"); sh < 0.4 || sh > 0.6 {
			t.Fatalf("b share %.3f, want about half", sh)
		}
	})
	t.Run("slow candidate gets less", func(t *testing.T) {
		s := newSim(newPicker(Config{}, 1), twoCands(), fixed(10*ms, 100*ms))
		s.run(60*time.Second, 5*ms)
		if sh := s.share("b"); sh > 0.05 {
			t.Fatalf("slow b share %.3f, want under 5%%", sh)
		}
		if s.counts["b"] == 0 {
			t.Fatal("slow b never probed")
		}
	})
	t.Run("under heavy load the slow one takes the overflow", func(t *testing.T) {
		// 1 request/ms: a alone would hold ~10 in flight, where its score
		// passes b's idle one.
		s := newSim(newPicker(Config{}, 1), twoCands(), fixed(10*ms, 40*ms))
		s.run(20*time.Second, ms)
		if sh := s.share("b"); sh < 0.02 || sh > 0.3 {
			t.Fatalf("b share %.3f, want some overflow but well under half", sh)
		}
	})
	t.Run("traffic follows a change", func(t *testing.T) {
		flip := t0.Add(30 * time.Second)
		lat := func(k Key, now time.Time) time.Duration {
			if (k == "b") == now.Before(flip) {
				return 100 * ms
			}
			return 10 * ms
		}
		s := newSim(newPicker(Config{}, 1), twoCands(), lat)
		s.run(30*time.Second, 5*ms)
		if sh := s.share("b"); sh > 0.05 {
			t.Fatalf("phase 1: slow b share %.3f", sh)
		}
		s.run(10*time.Second, 5*ms) // settle: b must be probed and found fast
		s.counts = map[Key]int{}
		s.run(30*time.Second, 5*ms)
		if sh := s.share("a"); sh > 0.05 {
			t.Fatalf("phase 2: now-slow a share %.3f", sh)
		}
	})
	t.Run("sequential traffic still probes the slow one", func(t *testing.T) {
		// One request at a time: load never tips the balance, only the
		// idle decay of b's estimate brings it back for a probe.
		p := newPicker(Config{}, 1)
		cands := twoCands()
		now := t0
		counts := map[Key]int{}
		for range 2400 { // 4 minutes, one request per 100ms
			k, _ := p.Pick(now, cands, nil)
			counts[k]++
			p.Start(k, Request)
			d := 10 * ms
			if k == "b" {
				d = 200 * ms
			}
			p.Done(now.Add(d), k, Request, d, Success)
			now = now.Add(100 * ms)
		}
		if counts["b"] < 3 || counts["b"] > 100 {
			t.Fatalf("slow b got %d of 2400, want a few probes", counts["b"])
		}
	})
}

// An unmeasured candidate is scored at the tier mean: neither starved nor
// flooded.
func TestUnknownLatencyPrior(t *testing.T) {
	cands := []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 1}, {Key: "new", Cost: 1}}
	p := newPicker(Config{}, 3)
	p.Snapshot(t0, cands)
	for _, k := range []Key{"a", "b"} {
		p.Start(k, Request)
		p.Done(t0, k, Request, 10*time.Millisecond, Success)
	}
	got := picks(p, t0, cands, nil, 6000)
	if sh := float64(got["new"]) / 6000; sh < 0.28 || sh > 0.39 {
		t.Fatalf("new candidate share %.3f, want about a third", sh)
	}
}

// Failed and cancelled attempts feed the estimate only as lower bounds, so
// a candidate that refuses fast does not attract traffic.
func TestOutcomeSamples(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		o    Outcome
		lat  time.Duration
		want time.Duration // estimate after a 50ms success and this sample
	}{
		{Success, 10 * ms, 30 * ms}, // one half-life later: blended halfway
		{ClientError, 10 * ms, 30 * ms},
		{ConnectFailure, 10 * ms, 25 * ms}, // ignored: only the idle decay shows
		{GatewayError, 10 * ms, 25 * ms},
		{ServerError, 10 * ms, 25 * ms},
		{Cancelled, 10 * ms, 25 * ms},
		{Cancelled, 300 * ms, 300 * ms}, // a hedge loser still says "at least"
		{ConnectFailure, 300 * ms, 300 * ms},
	}
	cands := []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 1}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.o, tt.lat), func(t *testing.T) {
			p := newPicker(Config{}, 1)
			p.Snapshot(t0, cands)
			p.Start("a", Request)
			p.Done(t0, "a", Request, 50*ms, Success)
			at := t0.Add(DefaultEWMAHalfLife)
			p.Start("a", Request)
			p.Done(at, "a", Request, tt.lat, tt.o)
			if got := status(p, at, cands, "a").EWMA; got != tt.want {
				t.Fatalf("EWMA %v, want %v", got, tt.want)
			}
		})
	}
}
