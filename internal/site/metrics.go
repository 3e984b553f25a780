package site

import (
	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/policy"
	"weft.dev/weft/internal/resource"
)

// zeroSeries creates the refusal counters' series at 0 for every label value
// known in advance. An alert on increase() sees the first refusal only when
// the series existed before it; an absent series would also leave a
// dashboard panel empty instead of flat.
func (s *Site) zeroSeries() {
	for _, r := range []string{rejectMalformed, rejectUnsigned, rejectKeyMismatch, rejectBadSignature, rejectStale, rejectRevocation, rejectRevoked} {
		s.metrics.RecordsRejected.WithLabelValues(r)
	}
	for _, l := range []string{"links", "tokens", "listeners", "connectors", "record", "interests", "event_credentials", "policy_rules"} {
		s.metrics.LimitRefusals.WithLabelValues(l)
	}
	for _, r := range []string{policy.NotExported, policy.NotImported} {
		s.pol.refused.WithLabelValues(r)
		s.pol.refusedEvents.WithLabelValues(r)
	}
}

// stateCollector exports, at scrape time, state that lives elsewhere:
// balancing candidates by state, certificate expiry and bridge connections.
type stateCollector struct{ s *Site }

var (
	descCandidates = prometheus.NewDesc("weft_address_candidates",
		"Sites serving an address as this site's balancer sees them, by state (ok, saturated, ejected).", []string{"address", "state"}, nil)
	descCertExpiry = prometheus.NewDesc("weft_certificate_expiry_timestamp_seconds",
		"When a certificate this site presents expires (Unix time): its CA, its listeners' server certificate, and each outbound link's client certificate.", []string{"certificate", "link"}, nil)
	descBridgeUp = prometheus.NewDesc("weft_bridge_connected",
		"1 when an event bridge is connected to its broker, 0 otherwise.", []string{"bridge"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCandidates, descCertExpiry, descBridgeUp} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	for _, a := range s.Table().Addresses() {
		states := s.svc.CandidateStates(a.Address)
		n := map[string]int{balance.StatusOK: 0, balance.StatusSaturated: 0, balance.StatusEjected: 0}
		for _, cand := range a.Candidates {
			st := balance.StatusOK // not picked yet: nothing against it
			if bs, ok := states[cand.Site.String()]; ok {
				st = bs.Status
			}
			n[st]++
		}
		for st, k := range n {
			ch <- prometheus.MustNewConstMetric(descCandidates, prometheus.GaugeValue, float64(k), a.Address, st)
		}
	}
	ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(s.ca.Certificate().NotAfter.Unix()), "ca", "")
	if tc := s.serverCert.Load(); tc != nil && tc.Leaf != nil {
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(tc.Leaf.NotAfter.Unix()), "server", "")
	}
	for _, ol := range s.state().Outbound {
		if cert, err := identity.ParseCertPEM([]byte(ol.CertPEM)); err == nil {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(cert.NotAfter.Unix()), "link", ol.Name)
		}
	}
	for _, b := range s.bridges.List() {
		up := 0.0
		if b.Status != nil && b.Status.State == resource.BridgeConnected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descBridgeUp, prometheus.GaugeValue, up, b.Name)
	}
}

var _ prometheus.Collector = stateCollector{}
