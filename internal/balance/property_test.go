package balance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// Shares follow Capacity both when idle (sequential work: the weighted draw
// decides) and under accumulating load (the score equalises load/capacity).
func TestCapacityWeighting(t *testing.T) {
	gen := rand.New(rand.NewPCG(5, 5))
	for trial := range 6 {
		n := 2 + gen.IntN(5)
		cands := make([]Candidate, n)
		var total float64
		for i := range cands {
			c := gen.IntN(10) // 0 means 1
			cands[i] = Candidate{Key: Key(fmt.Sprint("c", i)), Cost: 1, Capacity: uint32(c)}
			total += float64(max(c, 1))
		}
		want := func(i int) float64 { return float64(max(cands[i].Capacity, 1)) / total }
		t.Run(fmt.Sprint("idle/", trial), func(t *testing.T) {
			p := newPicker(Config{}, uint64(trial))
			const N = 20000
			got := picks(p, t0, cands, nil, N)
			for i, c := range cands {
				if sh := float64(got[c.Key]) / N; math.Abs(sh-want(i)) > 0.02 {
					t.Errorf("%s capacity %d: share %.3f, want %.3f", c.Key, c.Capacity, sh, want(i))
				}
			}
		})
		t.Run(fmt.Sprint("loaded/", trial), func(t *testing.T) {
			p := newPicker(Config{}, uint64(trial))
			const N = 3000
			for range N {
				k, _ := p.Pick(t0, cands, nil)
				p.Start(k, Connection)
			}
			for i, s := range p.Snapshot(t0, cands) {
				if sh := float64(s.Connections) / N; math.Abs(sh-want(i)) > 0.02 {
					t.Errorf("%s capacity %d: holds %.3f of connections, want %.3f", s.Key, cands[i].Capacity, sh, want(i))
				}
			}
		})
	}
}

// TestRandomOperations drives Pickers with random work, outcomes, limits
// and time, and checks after every step what must always hold.
func TestRandomOperations(t *testing.T) {
	trials, steps := 40, 1500
	if testing.Short() {
		trials = 10
	}
	for trial := range trials {
		r := rand.New(rand.NewPCG(uint64(trial), 77))
		n := 1 + r.IntN(8)
		cands := make([]Candidate, n)
		lim := func() uint32 {
			if r.IntN(2) == 0 {
				return 0
			}
			return uint32(1 + r.IntN(3))
		}
		for i := range cands {
			cands[i] = Candidate{
				Key:      Key(fmt.Sprint("c", i)),
				Cost:     uint64(r.IntN(3)),
				Capacity: uint32(r.IntN(4)),
				Limits:   Limits{MaxConnections: lim(), MaxPending: lim(), MaxRequests: lim()},
			}
		}
		pct := []int{-1, 10, 34, 50, 100}[r.IntN(5)]
		cfg := Config{Outlier: Outlier{
			ConsecutiveErrors:  1 + r.IntN(4),
			Interval:           time.Duration(1+r.IntN(3)) * time.Second,
			BaseEjection:       time.Duration(1+r.IntN(5)) * time.Second,
			MaxEjectionPercent: pct,
		}}
		p := newPicker(cfg, uint64(trial))
		now := t0
		type work struct {
			key  Key
			kind Kind
		}
		var open []work
		conns, reqs := map[Key]uint32{}, map[Key]uint32{}

		saturated := func(c Candidate) bool {
			l := c.Limits
			return l.MaxConnections > 0 && conns[c.Key] >= l.MaxConnections ||
				l.MaxRequests > 0 && reqs[c.Key] >= l.MaxRequests ||
				l.MaxConnections > 0 && l.MaxPending > 0 && reqs[c.Key] >= l.MaxConnections+l.MaxPending
		}

		for step := range steps {
			fail := func(format string, args ...any) {
				t.Fatalf("trial %d step %d: %s", trial, step, fmt.Sprintf(format, args...))
			}
			now = now.Add(time.Duration(r.IntN(1500)) * time.Millisecond)
			switch op := r.IntN(10); {
			case op < 5: // pick and maybe start
				excluded := map[Key]bool{}
				for _, c := range cands {
					if r.IntN(5) == 0 {
						excluded[c.Key] = true
					}
				}
				snap := p.Snapshot(now, cands)
				bestUsable, bestEjected := uint64(math.MaxUint64), uint64(math.MaxUint64)
				for i, c := range cands {
					if excluded[c.Key] || saturated(c) {
						continue
					}
					if snap[i].Status == StatusEjected {
						bestEjected = min(bestEjected, c.Cost)
					} else {
						bestUsable = min(bestUsable, c.Cost)
					}
				}
				k, ok := p.Pick(now, cands, func(k Key) bool { return excluded[k] })
				var got Candidate
				var gotState State
				for i, c := range cands {
					if c.Key == k {
						got, gotState = c, snap[i]
					}
				}
				switch {
				case bestUsable != math.MaxUint64:
					if !ok || gotState.Status != StatusOK || got.Cost != bestUsable || excluded[k] {
						fail("picked %q (%v, cost %d) while usable cost %d existed", k, gotState.Status, got.Cost, bestUsable)
					}
				case bestEjected != math.MaxUint64:
					if !ok || gotState.Status != StatusEjected || got.Cost != bestEjected || excluded[k] {
						fail("fallback picked %q (%v, cost %d), want ejected of cost %d", k, gotState.Status, got.Cost, bestEjected)
					}
				default:
					if ok {
						fail("picked %q with nothing usable", k)
					}
				}
				if ok && r.IntN(4) != 0 {
					kind := Kind(r.IntN(2))
					p.Start(k, kind)
					open = append(open, work{k, kind})
					if kind == Connection {
						conns[k]++
					} else {
						reqs[k]++
					}
				}
			case op < 9 && len(open) > 0: // finish some work
				i := r.IntN(len(open))
				w := open[i]
				open[i] = open[len(open)-1]
				open = open[:len(open)-1]
				if w.kind == Connection {
					conns[w.key]--
				} else {
					reqs[w.key]--
				}
				o := Outcome(r.IntN(6))
				if r.IntN(2) == 0 {
					o = GatewayError // enough errors to eject often
				}
				p.Done(now, w.key, w.kind, time.Duration(1+r.IntN(200))*time.Millisecond, o)
			default:
				if len(open) > 0 {
					w := open[r.IntN(len(open))]
					p.Observe(now, w.key, time.Duration(1+r.IntN(200))*time.Millisecond, ConnectFailure)
				}
			}

			ejected := 0
			for i, s := range p.Snapshot(now, cands) {
				if s.Connections != conns[s.Key] || s.InFlight != reqs[s.Key] {
					fail("%s counts %d/%d, want %d/%d", s.Key, s.Connections, s.InFlight, conns[s.Key], reqs[s.Key])
				}
				if s.Status == StatusEjected {
					ejected++
				} else if (s.Status == StatusSaturated) != saturated(cands[i]) {
					fail("%s status %s, saturated %v", s.Key, s.Status, saturated(cands[i]))
				}
			}
			limit := max(1, pct*n/100)
			if pct < 0 {
				limit = 0
			}
			if ejected > limit {
				fail("%d of %d ejected, cap %d%%", ejected, n, pct)
			}
			if ejected == n {
				fail("all %d ejected", n)
			}
		}
	}
}
