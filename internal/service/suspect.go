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
// the moment the peer answers.
type Suspecter interface {
	Suspect(path []siteid.ID) bool
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
		if !sp.Suspect(c.routes[bc.Key].Path) {
			continue
		}
		if out == nil {
			out = slices.Clone(c.list)
		}
		out[i].Suspect = true
	}
	if out == nil {
		return c.list
	}
	return out
}
