package balance

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestPolicyAdapts scripts a cheap candidate that turns slow and recovers
// next to a costlier fast one, with sequential requests every 10 ms, and
// checks where the work goes in each phase and each policy.
func TestPolicyAdapts(t *testing.T) {
	cands := []Candidate{{Key: "cheap", Cost: 1}, {Key: "costly", Cost: 10}}
	type phase struct {
		name     string
		cheapLat time.Duration
		length   time.Duration
		minCheap float64 // share of the phase's last 30 s the cheap one must get
		maxCheap float64 // ... and may get
	}
	const costlyLat = 20 * time.Millisecond
	phases := func(slow, recovered [2]float64) []phase {
		return []phase{
			{name: "fast", cheapLat: 5 * time.Millisecond, length: 30 * time.Second, minCheap: 0.8, maxCheap: 1},
			{name: "slow", cheapLat: 800 * time.Millisecond, length: 60 * time.Second, minCheap: slow[0], maxCheap: slow[1]},
			{name: "recovered", cheapLat: 5 * time.Millisecond, length: 60 * time.Second, minCheap: recovered[0], maxCheap: recovered[1]},
		}
	}
	for _, tc := range []struct {
		name   string
		policy Policy
		phases []phase
	}{
		// Cost: the cheap tier keeps everything, slow or not.
		{"cost", Policy{Mode: ByCost}, phases([2]float64{1, 1}, [2]float64{1, 1})},
		// Latency: the slow cheap one loses nearly all, and wins it back.
		{"latency", Policy{Mode: ByLatency}, phases([2]float64{0, 0.02}, [2]float64{0.8, 1})},
		// Cost+latency at 1 ms per cost unit: 10 ms of penalty does not
		// save an 800 ms candidate.
		{"cost+latency", Policy{Mode: ByCostLatency}, phases([2]float64{0, 0.02}, [2]float64{0.8, 1})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPicker(Config{}, rand.New(rand.NewPCG(1, 2)))
			p.SetPolicy(tc.policy)
			now := t0
			for _, ph := range tc.phases {
				end := now.Add(ph.length)
				tail := end.Add(-30 * time.Second)
				var cheap, all int
				for now.Before(end) {
					k, ok := p.Pick(now, cands, nil)
					if !ok {
						t.Fatalf("%s: no candidate", ph.name)
					}
					p.Start(k, Request)
					lat := costlyLat
					if k == "cheap" {
						lat = ph.cheapLat
					}
					// Sequential: the answer comes before the next request.
					p.Done(now.Add(lat), k, Request, lat, Success)
					if !now.Before(tail) {
						all++
						if k == "cheap" {
							cheap++
						}
					}
					now = now.Add(lat + 10*time.Millisecond)
				}
				share := float64(cheap) / float64(all)
				if share < ph.minCheap || share > ph.maxCheap {
					t.Errorf("%s: cheap got %.3f of the last 30 s, want %.2f to %.2f", ph.name, share, ph.minCheap, ph.maxCheap)
				}
				st := p.Snapshot(now, cands)
				if got := st[0].Share + st[1].Share; got < 0.999 || got > 1.001 || st[0].EWMA <= 0 {
					t.Errorf("%s: snapshot %+v: shares do not add up or no estimate", ph.name, st)
				}
			}
		})
	}
}

// TestPolicyCostPenalty: equal latencies, so the penalty alone decides
// under cost+latency, and nothing under latency.
func TestPolicyCostPenalty(t *testing.T) {
	cands := []Candidate{{Key: "near", Cost: 1}, {Key: "far", Cost: 30}}
	for _, tc := range []struct {
		mode    PolicyMode
		minNear float64
		maxNear float64
	}{
		{ByLatency, 0.3, 0.7},
		{ByCostLatency, 0.95, 1},
	} {
		p := NewPicker(Config{}, rand.New(rand.NewPCG(3, 4)))
		p.SetPolicy(Policy{Mode: tc.mode})
		now, near := t0, 0
		for range 1000 {
			k, _ := p.Pick(now, cands, nil)
			p.Start(k, Request)
			p.Done(now, k, Request, 10*time.Millisecond, Success)
			if k == "near" {
				near++
			}
			now = now.Add(20 * time.Millisecond)
		}
		if s := float64(near) / 1000; s < tc.minNear || s > tc.maxNear {
			t.Errorf("mode %d: near got %.3f, want %.2f to %.2f", tc.mode, s, tc.minNear, tc.maxNear)
		}
	}
}

func TestRecentCount(t *testing.T) {
	var r recentCount
	for i := range 120 {
		r.add(t0.Add(time.Duration(i) * time.Second))
	}
	// Requests in the last minute, to a bucket's precision.
	if n := r.total(t0.Add(119 * time.Second)); n < 60 || n > 70 {
		t.Errorf("last minute: %d, want 60 to 70", n)
	}
	if n := r.total(t0.Add(10 * time.Minute)); n != 0 {
		t.Errorf("after ten idle minutes: %d", n)
	}
}
