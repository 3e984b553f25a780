package site

import (
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/siteid"
)

// Status is what `weft status` shows: this site, its links, the network's sites
// and every reachable address with where it is served.
type Status struct {
	Site       SiteView             `json:"site"`
	Links      []resource.Link      `json:"links"`
	Sites      []SiteRouteView      `json:"sites"`
	Addresses  []AddressView        `json:"addresses"`
	Listeners  []ListenerView       `json:"listeners"`
	Connectors []resource.Connector `json:"connectors"`
}

// SiteView identifies a site and its addresses.
type SiteView struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Admin string `json:"admin,omitempty"`
	Link  string `json:"link,omitempty"`
	// Events is the event API's address.
	Events string `json:"events,omitempty"`
}

// SiteRouteView is a reachable site with the cost and path to it.
type SiteRouteView struct {
	ID   string   `json:"id"`
	Name string   `json:"name"`
	Cost uint64   `json:"cost"`
	Path []string `json:"path"` // site names after this one
}

// AddressView is an address and the sites that serve it, cheapest first.
type AddressView struct {
	Address string            `json:"address"`
	Sites   []AddressSiteView `json:"sites"`
	// Instances are this site's own http connectors for the address, as
	// its connector-side balancer sees them.
	Instances []CandidateView `json:"instances,omitempty"`
}

// AddressSiteView is one site serving an address, with this site's
// balancing state of it once traffic was balanced here.
type AddressSiteView struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Cost     uint64 `json:"cost"`
	Protocol string `json:"protocol"`
	Capacity uint32 `json:"capacity"`
	CandidateView
}

// CandidateView is a balancing candidate's state: ok, saturated or ejected
// (until EjectedUntil), its latency estimate and its load.
type CandidateView struct {
	Connector    string     `json:"connector,omitempty"` // for instances
	State        string     `json:"state,omitempty"`
	EjectedUntil *time.Time `json:"ejectedUntil,omitempty"`
	EWMA         string     `json:"ewma,omitempty"`
	InFlight     uint32     `json:"inFlight"`
	Connections  uint32     `json:"connections"`
	TimesEjected int        `json:"timesEjected,omitempty"`
}

func candidateView(s balance.State) CandidateView {
	v := CandidateView{State: s.Status, InFlight: s.InFlight, Connections: s.Connections, TimesEjected: s.TimesEjected}
	if s.Status == balance.StatusEjected {
		t := s.EjectedUntil.UTC()
		v.EjectedUntil = &t
	}
	if s.EWMA > 0 {
		v.EWMA = s.EWMA.Round(time.Microsecond).String()
	}
	return v
}

// ListenerView is a listener with the address it actually listens on.
type ListenerView struct {
	resource.Listener
	Listen string `json:"listen,omitempty"`
}

// Status reports the site's state now.
func (s *Site) Status() Status {
	t := s.Table()
	names := map[siteid.ID]string{}
	st := Status{
		Site:       SiteView{ID: s.id.String(), Name: s.name, Admin: s.AdminAddr().String(), Link: s.LinkAddr().String(), Events: s.EventsAddr().String()},
		Links:      s.Links(),
		Listeners:  s.Listeners(),
		Connectors: s.Connectors(),
	}
	for _, r := range t.Sites() {
		names[r.ID] = r.Name
	}
	for _, r := range t.Sites() {
		v := SiteRouteView{ID: r.ID.String(), Name: r.Name, Cost: r.Cost, Path: []string{}}
		for _, hop := range r.Path {
			v.Path = append(v.Path, names[hop])
		}
		st.Sites = append(st.Sites, v)
	}
	for _, a := range t.Addresses() {
		v := AddressView{Address: a.Address}
		states := s.svc.CandidateStates(a.Address)
		for _, c := range a.Candidates {
			sv := AddressSiteView{ID: c.Site.String(), Name: c.SiteName, Cost: c.Cost, Protocol: c.Protocol, Capacity: c.Capacity}
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
func (s *Site) Listeners() []ListenerView {
	ls := s.state().Listeners
	out := make([]ListenerView, 0, len(ls))
	for _, l := range ls {
		v := ListenerView{Listener: l}
		if a, ok := s.svc.ListenerAddr(l.Name); ok {
			v.Listen = a.String()
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
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
	descLinkRTT   = prometheus.NewDesc("weft_link_rtt_seconds", "Round-trip time measured by link heartbeats.", []string{"link", "peer"}, nil)
	descLinkBytes = prometheus.NewDesc("weft_link_bytes_total", "Stream payload bytes carried by a link session.", []string{"link", "peer", "direction"}, nil)
	descLinkStrm  = prometheus.NewDesc("weft_link_streams_total", "Streams opened over a link session.", []string{"link", "peer", "direction"}, nil)
	descLinkFail  = prometheus.NewDesc("weft_link_streams_failed_total", "Streams rejected or reset on a link session.", []string{"link", "peer"}, nil)
	descLinkAct   = prometheus.NewDesc("weft_link_streams_active", "Streams open now on a link session.", []string{"link", "peer"}, nil)
)

func (c linkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLinksUp, descLinkRTT, descLinkBytes, descLinkStrm, descLinkFail, descLinkAct} {
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
