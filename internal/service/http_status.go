package service

import (
	"sort"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/resource"
)

// CandidateStates returns this site's balancing state of each site serving
// address, keyed by site ID: from the HTTP balancer when a request was
// balanced here, else from the TCP one, else nil (nothing measured yet).
func (m *Manager) CandidateStates(address string) map[string]balance.State {
	var bcands []balance.Candidate
	m.mu.Lock()
	_, isHTTP := m.http.ingress[address]
	_, isTCP := m.pickers[address]
	m.mu.Unlock()
	switch {
	case isHTTP:
		bcands = m.httpPlan(address).bcands
	case isTCP:
		bcands, _ = m.tcpCandidates(m.cfg.Net.Table().Candidates(address), address)
	default:
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.http.ingress[address]
	if !isHTTP {
		p = m.pickers[address]
	}
	out := map[string]balance.State{}
	for _, s := range p.Snapshot(m.cfg.Clock.Now(), bcands) {
		out[string(s.Key)] = s
	}
	return out
}

// InstanceStates returns the balancing state of this site's http
// connectors for address, by connector name, once requests were served.
func (m *Manager) InstanceStates(address string) []balance.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.http.instances[address]
	if p == nil {
		return nil
	}
	var cands []balance.Candidate
	for name, c := range m.connectors {
		s := c.spec.Spec
		if s.Address == address && s.Protocol == resource.ProtocolHTTP {
			cands = append(cands, balance.Candidate{Key: balance.Key(name), Capacity: s.Capacity,
				Limits: balance.Limits{MaxConnections: s.MaxConnections, MaxPending: s.MaxPending, MaxRequests: s.MaxRequests}})
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Key < cands[j].Key })
	return p.Snapshot(m.cfg.Clock.Now(), cands)
}
