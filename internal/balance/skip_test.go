package balance

import (
	"maps"
	"testing"
)

// TestSkipped: Skipped says why each candidate was passed over for the
// one picked: tried, saturated, ejected, suspect; a usable candidate that
// only lost the draw, and the pick itself, are not reported.
func TestSkipped(t *testing.T) {
	p := newPicker(Config{}, 1)
	cands := []Candidate{
		{Key: "full", Cost: 1, Limits: Limits{MaxConnections: 1}},
		{Key: "bad", Cost: 1},
		{Key: "slow-link", Cost: 1, Suspect: true},
		{Key: "tried", Cost: 1},
		{Key: "ok1", Cost: 5},
		{Key: "ok2", Cost: 5},
		{Key: "spare", Cost: 5},
	}
	p.Start("full", Connection)
	for range DefaultConfig().Outlier.ConsecutiveErrors {
		p.Start("bad", Request)
		p.Done(t0, "bad", Request, 0, ServerError)
	}
	exclude := func(k Key) bool { return k == "tried" }
	chosen, ok := p.Pick(t0, cands, exclude)
	if !ok || chosen == "full" || chosen == "bad" || chosen == "slow-link" || chosen == "tried" {
		t.Fatalf("picked %q %v", chosen, ok)
	}
	got := map[Key]string{}
	p.Skipped(t0, cands, exclude, chosen, func(k Key, reason string) { got[k] = reason })
	want := map[Key]string{"full": SkipSaturated, "bad": SkipEjected, "slow-link": SkipSuspect, "tried": SkipTried}
	if !maps.Equal(got, want) {
		t.Errorf("skipped %v, want %v", got, want)
	}

	// With every usable one tried, the suspect candidate is the pick and
	// is not reported; the ejected one still is.
	exclude = func(k Key) bool { return k != "slow-link" && k != "bad" && k != "full" }
	if chosen, _ = p.Pick(t0, cands, exclude); chosen != "slow-link" {
		t.Fatalf("picked %q, want the suspect candidate", chosen)
	}
	got = map[Key]string{}
	p.Skipped(t0, cands, exclude, chosen, func(k Key, reason string) { got[k] = reason })
	if got["slow-link"] != "" || got["bad"] != SkipEjected || got["full"] != SkipSaturated || got["ok1"] != SkipTried {
		t.Errorf("skipped %v", got)
	}
}
