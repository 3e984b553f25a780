package service

import (
	"slices"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/siteid"
)

// Suspecter is what a Network may also implement: whether the first link
// of path (a candidate's segments after this site) is under suspicion, its
// peer slow to answer and probed (link.Session.Suspect). The balancer then
// avoids the candidate while another is usable: new work goes around a
// link that may be dead before the link layer has decided, and comes back
// the moment the peer answers. stalled, which implies suspect, says the
// peer looks stalled rather than slow (link.Session.Stalled): such a
// candidate comes after the merely suspect ones.
type Suspecter interface {
	Suspect(path []siteid.ID) (suspect, stalled bool)
}

// withSuspects is c.list with Suspect set from net at this instant; c.list
// itself, shared and not to be written, when nothing is suspect.
func withSuspects(net Network, c candidates) []balance.Candidate {
	sp, ok := net.(Suspecter)
	if !ok {
		return c.list
	}
	var out []balance.Candidate
	for i, bc := range c.list {
		suspect, stalled := sp.Suspect(c.routes[bc.Key].Path)
		if !suspect {
			continue
		}
		if out == nil {
			out = slices.Clone(c.list)
		}
		out[i].Suspect, out[i].Stalled = true, stalled
	}
	if out == nil {
		return c.list
	}
	return out
}
