package balance

import (
	"slices"
	"testing"
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
