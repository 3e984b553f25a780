package service

import (
	"testing"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// suspectNet says the link to its one suspect neighbour is under
// suspicion, and stalled too if stalled.
type suspectNet struct {
	Network
	suspect siteid.ID
	stalled bool
}

func (n suspectNet) Suspect(path []siteid.ID) (bool, bool) {
	s := len(path) > 0 && path[0] == n.suspect
	return s, s && n.stalled
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
		got := withSuspects(suspectNet{suspect: b, stalled: stalled}, cands)
		for i, bc := range got {
			want := bc.Key == balance.Key(b.String()) || bc.Key == balance.Key(d.String())
			if bc.Suspect != want || bc.Stalled != (want && stalled) {
				t.Errorf("candidate %d (%s): suspect %v stalled %v, want %v %v", i, bc.Key, bc.Suspect, bc.Stalled, want, want && stalled)
			}
			if cands.list[i].Suspect || cands.list[i].Stalled {
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
