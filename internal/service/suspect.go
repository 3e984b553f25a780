package service

import (
	"slices"
	"time"

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
	Suspect(path []siteid.ID) Suspicion
}

// Suspicion is the state of a candidate's first link at a pick, as
// balance.Candidate takes it.
type Suspicion struct {
	Suspect bool
	// Stalled, which implies Suspect, says the peer looks stalled rather
	// than slow (link.Session.Stalled): such a candidate comes after the
	// merely suspect ones.
	Stalled bool
	// Silent is how long the link has heard nothing from its peer
	// (link.Session.Silent), when Suspect: of the suspect candidates, or
	// the stalled ones, the one heard from last comes first.
	Silent time.Duration
}

// withSuspects is c.list with Suspect, Stalled and Silent set from net at
// this instant; c.list itself, shared and not to be written, when nothing
// is suspect.
func withSuspects(net Network, c candidates) []balance.Candidate {
	sp, ok := net.(Suspecter)
	if !ok {
		return c.list
	}
	var out []balance.Candidate
	for i, bc := range c.list {
		s := sp.Suspect(c.routes[bc.Key].Path)
		if !s.Suspect {
			continue
		}
		if out == nil {
			out = slices.Clone(c.list)
		}
		out[i].Suspect, out[i].Stalled, out[i].Silent = true, s.Stalled, s.Silent
	}
	if out == nil {
		return c.list
	}
	return out
}
