package balance

import (
	"slices"
	"testing"
	"time"
)

// A suspect candidate (its link probes a silent-looking peer) is avoided
// while another is usable, even a costlier one; it is used when it is all
// there is, before an ejected one; and the suspicion leaves no trace once
// lifted.
func TestSuspectAvoided(t *testing.T) {
	p := newPicker(Config{}, 1)
	cands := []Candidate{{Key: "b", Cost: 1}, {Key: "c", Cost: 1}, {Key: "far", Cost: 20}}
	mark := func(suspect ...Key) []Candidate {
		out := slices.Clone(cands)
		for i := range out {
			out[i].Suspect = slices.Contains(suspect, out[i].Key)
		}
		return out
	}
	// b suspect: every pick goes to c.
	if got := picks(p, t0, mark("b"), nil, 100); got["c"] != 100 {
		t.Fatalf("b suspect: picks %v, want all to c", got)
	}
	// b and c suspect: the costlier usable site wins over both.
	if got := picks(p, t0, mark("b", "c"), nil, 100); got["far"] != 100 {
		t.Fatalf("b, c suspect: picks %v, want all to far", got)
	}
	// Everything suspect: the cheapest suspect tier, rather than refusing.
	if got := picks(p, t0, mark("b", "c", "far"), nil, 100); got["far"] != 0 || got["b"]+got["c"] != 100 {
		t.Fatalf("all suspect: picks %v, want the cheap tier", got)
	}
	// Suspect comes before ejected.
	fail(p, t0, "c", 5)
	if s := status(p, t0, cands, "c"); s.Status != StatusEjected {
		t.Fatalf("c not ejected: %+v", s)
	}
	if k, ok := p.Pick(t0, mark("b"), func(k Key) bool { return k == "far" }); !ok || k != "b" {
		t.Fatalf("b suspect, c ejected: picked %q %v, want b", k, ok)
	}
	// Lifted: b is usable again at once.
	if got := picks(p, t0, mark(), nil, 100); got["b"] != 100 {
		t.Fatalf("suspicion lifted: picks %v, want all to b (c ejected)", got)
	}
	// Order lists the suspect after the usable.
	if got, want := p.Order(t0, mark("b")), []Key{"far", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// A stalled candidate (its peer has not answered a probe for long, or was
// judged silent) ranks after a merely suspect one, even a costlier one,
// and before an ejected one; the skip reason says which.
func TestStalledAfterSuspect(t *testing.T) {
	p := newPicker(Config{}, 1)
	cands := []Candidate{{Key: "b", Cost: 1}, {Key: "c", Cost: 1}, {Key: "far", Cost: 20}}
	mark := func(stalled Key, suspect ...Key) []Candidate {
		out := slices.Clone(cands)
		for i := range out {
			out[i].Stalled = out[i].Key == stalled
			out[i].Suspect = out[i].Stalled || slices.Contains(suspect, out[i].Key)
		}
		return out
	}
	// b stalled, c and far suspect: c, the cheaper suspect.
	if got := picks(p, t0, mark("b", "c", "far"), nil, 100); got["c"] != 100 {
		t.Fatalf("b stalled, c and far suspect: picks %v, want all to c", got)
	}
	var skipped []string
	p.Skipped(t0, mark("b", "c", "far"), nil, "c", func(k Key, why string) { skipped = append(skipped, string(k)+":"+why) })
	if want := []string{"b:stalled"}; !slices.Equal(skipped, want) {
		t.Fatalf("skipped %v, want %v", skipped, want)
	}
	// Every other candidate ejected or excluded: the stalled one still
	// serves before the ejected.
	fail(p, t0, "c", 5)
	if k, ok := p.Pick(t0, mark("b"), func(k Key) bool { return k == "far" }); !ok || k != "b" {
		t.Fatalf("b stalled, c ejected: picked %q %v, want b", k, ok)
	}
}

// Among suspect candidates of a tier, and among stalled ones, the one
// heard from last wins every pick, even when latency and load favour the
// other (a frozen site is idle and was fast): only the class and the cost
// tier come before silence. Usable candidates ignore it.
func TestLeastSilentFirst(t *testing.T) {
	const ms = time.Millisecond
	type cand struct {
		key              Key
		cost             uint64
		suspect, stalled bool
		silent           time.Duration
	}
	tests := []struct {
		name   string
		mode   PolicyMode
		cands  []cand
		want   []Key // the exact set of keys Pick returns over many calls
		order  []Key // Order's result
		chosen Key   // for Skipped
		skips  []string
	}{
		{
			name:   "both stalled: the one heard from last",
			cands:  []cand{{"frozen", 1, true, true, 1330 * ms}, {"live", 1, true, true, 215 * ms}},
			want:   []Key{"live"},
			order:  []Key{"live", "frozen"},
			chosen: "live",
			skips:  []string{"frozen:silent"},
		},
		{
			name:  "both suspect: the one heard from last",
			cands: []cand{{"frozen", 1, true, false, 90 * ms}, {"live", 1, true, false, 30 * ms}},
			want:  []Key{"live"},
			order: []Key{"live", "frozen"},
		},
		{
			name:   "suspect before stalled, however silent",
			cands:  []cand{{"suspect", 1, true, false, 900 * ms}, {"stalled", 1, true, true, 10 * ms}},
			want:   []Key{"suspect"},
			order:  []Key{"suspect", "stalled"},
			chosen: "suspect",
			skips:  []string{"stalled:stalled"},
		},
		{
			name:   "the cheaper tier before silence",
			cands:  []cand{{"near", 1, true, true, 900 * ms}, {"far", 20, true, true, 10 * ms}},
			want:   []Key{"near"},
			order:  []Key{"near", "far"},
			chosen: "near",
		},
		{
			name:   "one tier by latency: silence alone",
			mode:   ByLatency,
			cands:  []cand{{"near", 1, true, true, 900 * ms}, {"far", 20, true, true, 10 * ms}},
			want:   []Key{"far"},
			order:  []Key{"far", "near"},
			chosen: "far",
			skips:  []string{"near:silent"},
		},
		{
			name:  "as silent: latency and load decide between them",
			cands: []cand{{"b", 1, true, true, 300 * ms}, {"c", 1, true, true, 300 * ms}, {"d", 1, true, true, 301 * ms}},
			want:  []Key{"b"},
		},
		{
			name:  "usable ones ignore silence",
			cands: []cand{{"b", 1, false, false, 900 * ms}, {"c", 1, false, false, 0}},
			want:  []Key{"b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPicker(Config{}, 1)
			p.SetPolicy(Policy{Mode: tt.mode})
			var cands []Candidate
			for _, c := range tt.cands {
				cands = append(cands, Candidate{Key: c.key, Cost: c.cost, Suspect: c.suspect, Stalled: c.stalled, Silent: c.silent})
			}
			// The first candidate was fast and is idle, as a site frozen
			// after serving well; the others are slow and loaded.
			p.Start(cands[0].Key, Connection)
			p.Done(t0, cands[0].Key, Connection, ms, Success)
			for _, c := range cands[1:] {
				p.Start(c.Key, Connection)
				p.Observe(t0, c.Key, 300*ms, Success)
				p.Start(c.Key, Connection)
			}
			if got := keysOf(picks(p, t0, cands, nil, 200)); !slices.Equal(got, tt.want) {
				t.Errorf("Pick returned %v, want %v", got, tt.want)
			}
			if tt.order != nil {
				if got := p.Order(t0, cands); !slices.Equal(got, tt.order) {
					t.Errorf("Order = %v, want %v", got, tt.order)
				}
			}
			if tt.chosen != "" {
				var skipped []string
				p.Skipped(t0, cands, nil, tt.chosen, func(k Key, why string) { skipped = append(skipped, string(k)+":"+why) })
				if !slices.Equal(skipped, tt.skips) {
					t.Errorf("Skipped %v, want %v", skipped, tt.skips)
				}
			}
		})
	}
}
