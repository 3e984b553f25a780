package service

import (
	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/routing"
)

// countOverflow counts a pick of a site costlier than the cheapest that
// serves the address. Under the ByCost policy that happens only when the
// cheaper ones were at their limit, ejected or already tried; the other
// policies rank by latency across costs, so their picks are not counted.
func (m *Manager) countOverflow(a *address, c candidates, picked routing.Candidate, pol balance.Policy) {
	if pol.Mode != balance.ByCost {
		return
	}
	for _, r := range c.routes {
		if r.Cost < picked.Cost {
			m.cfg.Metrics.Overflows.WithLabelValues(a.name).Inc()
			return
		}
	}
}
