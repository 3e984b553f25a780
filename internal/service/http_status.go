package service

import (
	"weft.dev/weft/internal/balance"
)

// CandidateStates returns this site's balancing state of each site serving
// address, keyed by site ID: from the HTTP balancer when a request was
// balanced here, else from the TCP one, else nil (nothing measured yet).
func (m *Manager) CandidateStates(address string) map[string]balance.State {
	a := m.lookup(address)
	if a == nil {
		return nil
	}
	m.fresh(a)
	states := a.candidateStates(m.cfg.Clock.Now())
	if states == nil {
		return nil
	}
	out := make(map[string]balance.State, len(states))
	for _, s := range states {
		out[string(s.Key)] = s
	}
	return out
}

// InstanceStates returns the balancing state of this site's http
// connectors for address, by connector name, once requests were served.
func (m *Manager) InstanceStates(address string) []balance.State {
	a := m.lookup(address)
	if a == nil {
		return nil
	}
	return a.instanceStates(m.cfg.Clock.Now())
}
