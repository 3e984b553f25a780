package site

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/siteid"
)

// candidateView is a balancing candidate as the admin API shows it.
func candidateView(s balance.State) apitype.CandidateView {
	v := apitype.CandidateView{State: s.Status, InFlight: s.InFlight, Connections: s.Connections, TimesEjected: s.TimesEjected,
		Recent: s.Recent, Share: math.Round(s.Share*1000) / 10}
	if s.Status == balance.StatusEjected {
		t := s.EjectedUntil.UTC()
		v.EjectedUntil = &t
	}
	if s.EWMA > 0 {
		v.EWMA = s.EWMA.Round(time.Microsecond).String()
	}
	return v
}

// Status reports the site's state now.
func (s *Site) Status() apitype.Status {
	t := s.Table()
	names := map[siteid.ID]string{}
	st := apitype.Status{
		Site:       apitype.SiteView{ID: s.id.String(), Name: s.name, Admin: s.AdminAddr().String(), Link: s.LinkAddr().String(), Events: s.EventsAddr().String()},
		Links:      s.Links(),
		Listeners:  s.Listeners(),
		Connectors: s.Connectors(),
		Bridges:    s.bridges.List(),
	}
	for _, r := range t.Sites() {
		names[r.ID] = r.Name
	}
	for _, r := range t.Sites() {
		v := apitype.SiteRouteView{ID: r.ID.String(), Name: r.Name, Cost: r.Cost, Path: []string{}}
		for _, hop := range r.Path {
			v.Path = append(v.Path, names[hop])
		}
		st.Sites = append(st.Sites, v)
	}
	for _, a := range t.Addresses() {
		v := apitype.AddressView{Address: a.Address}
		states := s.svc.CandidateStates(a.Address)
		for _, c := range a.Candidates {
			sv := apitype.AddressSiteView{ID: c.Site.String(), Name: c.SiteName, Cost: c.Cost, Protocol: c.Protocol, Capacity: c.Capacity}
			if bs, ok := states[c.Site.String()]; ok {
				sv.CandidateView = candidateView(bs)
			}
			v.Sites = append(v.Sites, sv)
		}
		for _, bs := range s.svc.InstanceStates(a.Address) {
			iv := candidateView(bs)
			iv.Connector = string(bs.Key)
			v.Instances = append(v.Instances, iv)
		}
		st.Addresses = append(st.Addresses, v)
	}
	return st
}

// Listeners lists the listeners with where they listen.
func (s *Site) Listeners() []apitype.ListenerView {
	ls := s.state().Listeners
	out := make([]apitype.ListenerView, 0, len(ls))
	for _, l := range ls {
		v := s.listenerView(l)
		if a, ok := s.svc.ListenerAddr(l.Name); ok {
			v.Listen = a.String()
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// listenerView is l with a warning when no connector for its address is
// reachable: its clients are then closed at once, which without a word in
// `weft status` looks like a broken network.
func (s *Site) listenerView(l resource.Listener) apitype.ListenerView {
	v := apitype.ListenerView{Listener: l}
	if t := s.Table(); t == nil || len(t.Candidates(l.Spec.Address)) == 0 {
		v.Warning = fmt.Sprintf("no connector for %q is reachable, so its clients are turned away: create one where the service runs (`weft connector create %s --target HOST:PORT`) or link to that site",
			l.Spec.Address, l.Spec.Address)
	}
	return v
}

// Connectors lists the connectors.
func (s *Site) Connectors() []resource.Connector {
	out := slices.Clone(s.state().Connectors)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// linkCollector exports the link sessions' own counters at scrape time, so the
// data path keeps no Prometheus calls of its own.
type linkCollector struct{ s *Site }

var (
	descLinksUp   = prometheus.NewDesc("weft_links_up", "Link sessions established now.", nil, nil)
	descLinkUp    = prometheus.NewDesc("weft_link_up", "1 while a link this site holds (created here or accepted) has its session up, 0 while it is down; a deleted link has no series.", []string{"link", "peer"}, nil)
	descLinkRTT   = prometheus.NewDesc("weft_link_rtt_seconds", "Round-trip time measured by link heartbeats.", []string{"link", "peer"}, nil)
	descLinkBytes = prometheus.NewDesc("weft_link_bytes_total", "Stream payload bytes carried by a link session.", []string{"link", "peer", "direction"}, nil)
	descLinkStrm  = prometheus.NewDesc("weft_link_streams_total", "Streams opened over a link session.", []string{"link", "peer", "direction"}, nil)
	descLinkFail  = prometheus.NewDesc("weft_link_streams_failed_total", "Streams rejected or reset on a link session.", []string{"link", "peer"}, nil)
	descLinkAct   = prometheus.NewDesc("weft_link_streams_active", "Streams open now on a link session.", []string{"link", "peer"}, nil)
)

func (c linkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLinksUp, descLinkUp, descLinkRTT, descLinkBytes, descLinkStrm, descLinkFail, descLinkAct} {
		ch <- d
	}
}

func (c linkCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	var pcs []*peerConn
	for _, l := range c.s.peers {
		pcs = append(pcs, l...)
	}
	c.s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descLinksUp, prometheus.GaugeValue, float64(len(pcs)))
	// Only the links that exist have a series, so that an alert on a link
	// down ends when the link is deleted on purpose.
	for _, l := range c.s.Links() {
		up := 0.0
		if l.Status.State == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descLinkUp, prometheus.GaugeValue, up, l.Name, l.Status.PeerName)
	}
	for _, pc := range pcs {
		st := pc.sess.Stats()
		ln, peer := pc.linkName, pc.peerName
		ch <- prometheus.MustNewConstMetric(descLinkRTT, prometheus.GaugeValue, pc.sess.RTT().Seconds(), ln, peer)
		ch <- prometheus.MustNewConstMetric(descLinkBytes, prometheus.CounterValue, float64(st.BytesSent), ln, peer, "out")
		ch <- prometheus.MustNewConstMetric(descLinkBytes, prometheus.CounterValue, float64(st.BytesReceived), ln, peer, "in")
		ch <- prometheus.MustNewConstMetric(descLinkStrm, prometheus.CounterValue, float64(st.StreamsOpened), ln, peer, "out")
		ch <- prometheus.MustNewConstMetric(descLinkStrm, prometheus.CounterValue, float64(st.StreamsAccepted), ln, peer, "in")
		ch <- prometheus.MustNewConstMetric(descLinkFail, prometheus.CounterValue, float64(st.StreamsFailed), ln, peer)
		ch <- prometheus.MustNewConstMetric(descLinkAct, prometheus.GaugeValue, float64(st.StreamsActive), ln, peer)
	}
}

var _ prometheus.Collector = linkCollector{}
