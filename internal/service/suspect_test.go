package service

import (
	"testing"
	"time"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// suspectNet says the link to its one suspect neighbour is under
// suspicion, and stalled too if stalled, silent for silent.
type suspectNet struct {
	Network
	suspect siteid.ID
	stalled bool
	silent  time.Duration
}

var _ Suspecter = suspectNet{}

func (n suspectNet) Suspect(path []siteid.ID) Suspicion {
	if len(path) == 0 || path[0] != n.suspect {
		return Suspicion{}
	}
	return Suspicion{Suspect: true, Stalled: n.stalled, Silent: n.silent}
}

// The suspicion of a candidate's first link is fed to the balancer as
// data, at each pick, without touching the shared candidate list.
func TestWithSuspects(t *testing.T) {
	self, b, c, d := siteid.ID{1}, siteid.ID{2}, siteid.ID{3}, siteid.ID{4}
	cands := newCandidates(self, []routing.Candidate{
		{Site: self},
		{Site: b, Path: []siteid.ID{b}},
		{Site: d, Path: []siteid.ID{b, d}}, // through b
		{Site: c, Path: []siteid.ID{c}},
	}, "", balance.Limits{})
	for _, stalled := range []bool{false, true} {
		got := withSuspects(suspectNet{suspect: b, stalled: stalled, silent: time.Second}, cands)
		for i, bc := range got {
			want := bc.Key == balance.Key(b.String()) || bc.Key == balance.Key(d.String())
			silent := time.Duration(0)
			if want {
				silent = time.Second
			}
			if bc.Suspect != want || bc.Stalled != (want && stalled) || bc.Silent != silent {
				t.Errorf("candidate %d (%s): suspect %v stalled %v silent %v, want %v %v %v", i, bc.Key, bc.Suspect, bc.Stalled, bc.Silent, want, want && stalled, silent)
			}
			if cands.list[i].Suspect || cands.list[i].Stalled || cands.list[i].Silent != 0 {
				t.Errorf("shared list changed at %d", i)
			}
		}
	}
	if got := withSuspects(suspectNet{suspect: siteid.ID{9}}, cands); &got[0] != &cands.list[0] {
		t.Error("copied the list with nothing suspect")
	}
	if got := withSuspects(nil, cands); &got[0] != &cands.list[0] {
		t.Error("a Network without Suspect changed the list")
	}
}
