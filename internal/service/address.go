package service

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/observe"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// address is this site's state for one service address: a view of where
// the address is served, rebuilt whenever this site's connectors or the
// route table change, and the balancing state that connections and
// requests update. The request path reads the view with one atomic load
// and takes only this address's lock, never the Manager's.
type address struct {
	name string
	met  atomic.Pointer[tcpMetrics]  // see metrics
	view atomic.Pointer[addressView] // stored under Manager.mu and mu

	mu        sync.Mutex      // guards all following fields and connector.open; taken after Manager.mu; never held across I/O
	rng       *rand.Rand      // this address's own: Pickers of different addresses run under different locks
	tcp       *balance.Picker // connections from this site's listeners, across sites; nil until one
	ingress   *balance.Picker // requests from this site's listeners, across sites; nil until one
	instances *balance.Picker // requests to this site's http connectors; nil until one
	outlier   balance.Config  // what ingress and instances were made with
	latency   quantileWindow  // answer times of requests sent from here, for hedge auto
	remotes   map[string]remote
}

// remote is the pooled HTTP transport to an address along one path:
// keep-alive link streams.
type remote struct {
	path      []siteid.ID
	transport *framedTransport
}

// addressView is an immutable snapshot of where an address is served, as
// of one route table and one set of this site's connectors.
type addressView struct {
	table *routing.Table // the table it was built from; nil for none
	tcp   candidates     // every site serving the address
	http  candidates     // the sites serving it over http
	// local are this site's connectors for the address, by name; instances
	// are the http ones among them, as balancing candidates keyed by name.
	local      []localConnector
	instances  []balance.Candidate
	instanceOf map[balance.Key]int // index in local of each of instances
	// outlier is the Picker configuration this site's http connectors ask
	// for. Outlier settings live on connectors (like a DestinationRule on
	// its host) but are not flooded, so a site applies those of its own
	// connectors for the address, the first by name, and Istio's defaults
	// when it has none.
	outlier balance.Config
}

// candidates are the sites serving an address, for the balancer.
type candidates struct {
	list   []balance.Candidate
	routes map[balance.Key]routing.Candidate
}

// localConnector is a connector of this site as a view holds it: its spec
// as of the view, its connection count and its pooled target connections.
type localConnector struct {
	c         *connector
	name      string
	spec      resource.ConnectorSpec
	transport *targetTransport // http connectors only
}

func (lc localConnector) limits() balance.Limits {
	s := lc.spec
	return balance.Limits{MaxConnections: s.MaxConnections, MaxPending: s.MaxPending, MaxRequests: s.MaxRequests}
}

func newAddress(name string, rng *rand.Rand) *address {
	return &address{name: name, rng: rng, outlier: balance.DefaultConfig(), remotes: map[string]remote{}}
}

// tcpMetrics are an address's series of the metrics carry counts every
// connection in, looked up once: a lookup by label hashes the address
// and takes the vector's lock, five times a connection.
type tcpMetrics struct {
	opened, out, in prometheus.Counter
	active          prometheus.Gauge
}

// metrics returns a's series in m, made by its first connection (so that
// an address no client connected to has none, as before they were kept).
func (a *address) metrics(m *observe.Metrics) *tcpMetrics {
	if t := a.met.Load(); t != nil {
		return t
	}
	// Two first connections at once make equal values: a vector returns
	// the same series for the same labels.
	t := &tcpMetrics{
		opened: m.StreamsOpened.WithLabelValues(a.name),
		active: m.StreamsActive.WithLabelValues(a.name),
		out:    m.AddressBytes.WithLabelValues(a.name, "out"),
		in:     m.AddressBytes.WithLabelValues(a.name, "in"),
	}
	a.met.Store(t)
	return t
}

// newAddressView computes the view of address from table t (which may be
// nil) and local, this site's connectors for it sorted by name. It is
// pure: the same inputs give the same view.
func newAddressView(self siteid.ID, name string, t *routing.Table, local []localConnector) *addressView {
	v := &addressView{table: t, local: local, outlier: balance.DefaultConfig()}
	var routes []routing.Candidate
	if t != nil {
		routes = t.Candidates(name)
	}
	v.tcp = newCandidates(self, routes, "", localLimits(local, ""))
	v.http = newCandidates(self, routes, resource.ProtocolHTTP, localLimits(local, resource.ProtocolHTTP))
	first := true
	v.instanceOf = map[balance.Key]int{}
	for i, lc := range local {
		if lc.spec.Protocol != resource.ProtocolHTTP {
			continue
		}
		v.instanceOf[balance.Key(lc.name)] = i
		v.instances = append(v.instances, balance.Candidate{Key: balance.Key(lc.name), Capacity: lc.spec.Capacity, Limits: lc.limits()})
		if first {
			v.outlier, first = outlierConfig(lc.spec.Outlier), false
		}
	}
	return v
}

// newCandidates are the routes of protocol proto (any when empty), one per
// site, the cheapest first. This site's own candidate carries local, its
// connectors' limits, so that the Picker sees it saturated and overflows
// without trying it; remote sites answer for their own limits.
func newCandidates(self siteid.ID, routes []routing.Candidate, proto string, local balance.Limits) candidates {
	c := candidates{routes: make(map[balance.Key]routing.Candidate, len(routes))}
	for _, r := range routes {
		k := balance.Key(r.Site.String())
		if _, dup := c.routes[k]; dup || proto != "" && r.Protocol != proto {
			continue
		}
		bc := balance.Candidate{Key: k, Cost: r.Cost, Capacity: r.Capacity}
		if r.Site == self {
			bc.Limits = local
		}
		c.list = append(c.list, bc)
		c.routes[k] = r
	}
	return c
}

func (c candidates) has(k balance.Key) bool { _, ok := c.routes[k]; return ok }

// localLimits adds up the limits of the connectors of protocol proto (any
// when empty): the site is saturated when all of them are. One connector
// without a limit makes it unlimited.
func localLimits(local []localConnector, proto string) balance.Limits {
	var sum balance.Limits
	unlimited := [3]bool{}
	found := false
	for _, lc := range local {
		if proto != "" && lc.spec.Protocol != proto {
			continue
		}
		found = true
		l := lc.limits()
		for i, v := range []uint32{l.MaxConnections, l.MaxPending, l.MaxRequests} {
			unlimited[i] = unlimited[i] || v == 0
		}
		sum.MaxConnections += l.MaxConnections
		sum.MaxPending += l.MaxPending
		sum.MaxRequests += l.MaxRequests
	}
	if !found {
		return balance.Limits{}
	}
	if unlimited[0] {
		sum.MaxConnections = 0
	}
	if unlimited[1] {
		sum.MaxPending = 0
	}
	if unlimited[2] {
		sum.MaxRequests = 0
	}
	return sum
}

// outlierConfig is the Picker configuration a connector's outlier
// settings ask for.
func outlierConfig(o resource.OutlierSpec) balance.Config {
	cfg := balance.DefaultConfig()
	cfg.Outlier.ConsecutiveErrors = o.ConsecutiveErrors
	cfg.Outlier.Interval = o.Interval.Duration
	cfg.Outlier.BaseEjection = o.BaseEjection.Duration
	cfg.Outlier.MaxEjectionPercent = o.MaxEjectionPercent
	cfg.Outlier.MaxEjection = max(cfg.Outlier.MaxEjection, cfg.Outlier.BaseEjection)
	return cfg
}

// hasInstance reports whether k names one of the view's http connectors.
func (v *addressView) hasInstance(k balance.Key) bool {
	_, ok := v.instanceOf[k]
	return ok
}

// reaches reports whether a request along path can still reach the
// address: every site on it is in the table and the last serves the
// address over http.
func (v *addressView) reaches(path []siteid.ID) bool {
	if v.table == nil || len(path) == 0 || !v.http.has(balance.Key(path[len(path)-1].String())) {
		return false
	}
	for _, s := range path {
		if _, ok := v.table.Route(s); !ok {
			return false
		}
	}
	return true
}

// adopt makes v the address's view. Balancing state of sites and
// connectors v no longer has is forgotten, so that they stop counting
// towards the ejection cap and start afresh if they return; a Picker
// whose configuration changed starts afresh. It returns the transports
// of paths v no longer reaches, for the caller to close.
func (a *address) adopt(v *addressView) []idleCloser {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tcp != nil {
		a.tcp.Forget(v.tcp.has)
	}
	if v.outlier != a.outlier {
		a.outlier = v.outlier
		a.ingress = a.remake(a.ingress)
		a.instances = a.remake(a.instances)
	}
	if a.ingress != nil {
		a.ingress.Forget(v.http.has)
	}
	if a.instances != nil {
		a.instances.Forget(v.hasInstance)
	}
	var stale []idleCloser
	for key, r := range a.remotes {
		if !v.reaches(r.path) {
			delete(a.remotes, key)
			stale = append(stale, r.transport)
		}
	}
	a.view.Store(v)
	return stale
}

// remake replaces a Picker in use by a fresh one with the address's
// outlier configuration.
func (a *address) remake(p *balance.Picker) *balance.Picker {
	if p == nil {
		return nil
	}
	return balance.NewPicker(a.outlier, a.rng)
}

// idleCloser is a pooled transport: an http.Transport to a target, or a
// framedTransport along a path.
type idleCloser interface{ CloseIdleConnections() }

// closeTransports closes the idle connections of transports no one will
// use again; connections in use close when their requests end.
func closeTransports(ts []idleCloser) {
	for _, t := range ts {
		t.CloseIdleConnections()
	}
}

// The calls below are the request path's: each takes the address's lock
// once, around balancer bookkeeping only.

// pickConnection chooses a site for a TCP connection among those not in
// tried, adds it to tried and counts the connection on it. With explain
// (a traced connection) it also says which candidates it skipped and why
// (pickStart).
func (a *address) pickConnection(now time.Time, tried map[balance.Key]bool, net Network, explain bool) (routing.Candidate, balance.Key, []string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.view.Load()
	if a.tcp == nil {
		a.tcp = balance.NewPicker(balance.DefaultConfig(), a.rng)
	}
	c, k, skips, ok := pickStart(a.tcp, now, v.tcp, withSuspects(net, v.tcp), tried, balance.Connection, explain)
	if explain {
		skips = policySkips(net, a.name, skips)
	}
	return c, k, skips, ok
}

// pickRequest is pickConnection for an HTTP request, ranked by the
// listener's policy.
func (a *address) pickRequest(now time.Time, tried map[balance.Key]bool, pol balance.Policy, net Network, explain bool) (routing.Candidate, balance.Key, []string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.view.Load()
	if a.ingress == nil {
		a.ingress = balance.NewPicker(a.outlier, a.rng)
	}
	a.ingress.SetPolicy(pol)
	c, k, skips, ok := pickStart(a.ingress, now, v.http, withSuspects(net, v.http), tried, balance.Request, explain)
	if explain {
		skips = policySkips(net, a.name, skips)
	}
	return c, k, skips, ok
}

// maxSkips bounds the skipped candidates a span names.
const maxSkips = 16

// pickStart picks and counts under one lock, so that concurrent work sees
// each other's load and cannot squeeze under a limit together.
// list is c.list as the caller marked it (withSuspects). With explain it
// returns, as "site:reason", the candidates the balancer passed over for a
// reason (balance.Picker.Skipped), at most maxSkips; even when none was
// picked.
func pickStart(p *balance.Picker, now time.Time, c candidates, list []balance.Candidate, tried map[balance.Key]bool, kind balance.Kind, explain bool) (routing.Candidate, balance.Key, []string, bool) {
	excluded := func(k balance.Key) bool { return tried[k] }
	k, ok := p.Pick(now, list, excluded)
	var skips []string
	if explain {
		p.Skipped(now, list, excluded, k, func(s balance.Key, reason string) {
			if len(skips) < maxSkips {
				skips = append(skips, c.routes[s].SiteName+":"+reason)
			}
		})
	}
	if !ok {
		return routing.Candidate{}, "", skips, false
	}
	p.Start(k, kind)
	tried[k] = true
	return c.routes[k], k, skips, true
}

// connectionDone reports the end of a TCP connection's connect (or of the
// connection, with latency 0) to the balancer.
func (a *address) connectionDone(now time.Time, k balance.Key, latency time.Duration, o balance.Outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tcp.Done(now, k, balance.Connection, latency, o)
}

// connected reports a successful connect: a latency sample while the
// connection stays counted.
func (a *address) connected(now time.Time, k balance.Key, latency time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tcp.Observe(now, k, latency, balance.Success)
}

// requestDone ends a request counted by pickRequest. Answers, and copies
// cancelled with the time they had run, also feed the latency window for
// hedge auto: leaving the cancelled ones out would hide exactly the slow
// tail.
func (a *address) requestDone(now time.Time, k balance.Key, latency time.Duration, o balance.Outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ingress.Done(now, k, balance.Request, latency, o)
	if latency > 0 && (o == balance.Success || o == balance.ClientError || o == balance.Cancelled) {
		a.latency.add(latency)
	}
}

func (a *address) p95() (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.latency.quantile(0.95)
}

// pickInstance chooses one of this site's http connectors for a request
// (served false when there is none) and counts the request on it; ok
// false means all are saturated.
func (a *address) pickInstance(now time.Time) (lc localConnector, served, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.view.Load()
	if len(v.instances) == 0 {
		return localConnector{}, false, false
	}
	if a.instances == nil {
		a.instances = balance.NewPicker(a.outlier, a.rng)
	}
	k, ok := a.instances.Pick(now, v.instances, nil)
	if !ok {
		return localConnector{}, true, false
	}
	a.instances.Start(k, balance.Request)
	return v.local[v.instanceOf[k]], true, true
}

func (a *address) instanceDone(now time.Time, k balance.Key, latency time.Duration, o balance.Outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.instances.Done(now, k, balance.Request, latency, o)
}

// reserveConnector takes a connection slot of the least loaded local
// connector under its connection limit; on failure the code says why, for
// a stream's Reject. releaseConnector gives the slot back.
func (a *address) reserveConnector() (localConnector, uint16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.view.Load()
	best := -1
	for i, lc := range v.local {
		if limit := lc.spec.MaxConnections; limit > 0 && lc.c.open >= limit {
			continue
		}
		// Least open connections per unit of capacity.
		if best < 0 || uint64(lc.c.open)*uint64(v.local[best].spec.Capacity) < uint64(v.local[best].c.open)*uint64(lc.spec.Capacity) {
			best = i
		}
	}
	switch {
	case len(v.local) == 0:
		return localConnector{}, forward.RejectNoConnector, errNoLocalConnector
	case best < 0:
		return localConnector{}, forward.RejectSaturated, errSaturated
	}
	v.local[best].c.open++
	return v.local[best], 0, nil
}

func (a *address) releaseConnector(c *connector) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c.open--
}

// remote returns the pooled transport along path, made by make on first
// use.
func (a *address) remote(path []siteid.ID, make func() *framedTransport) *framedTransport {
	var buf [4 * len(siteid.ID{})]byte
	key := appendPathKey(buf[:0], path)
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.remotes[string(key)] // no string made to look it up
	if !ok {
		r = remote{path: path, transport: make()}
		a.remotes[string(key)] = r
	}
	return r.transport
}

// appendPathKey appends path's raw IDs: the key of its remote.
func appendPathKey(b []byte, path []siteid.ID) []byte {
	for _, s := range path {
		b = append(b, s[:]...)
	}
	return b
}

// candidateStates is the balancing state of the sites serving the
// address: from the HTTP balancer when a request was balanced here, else
// from the TCP one, else nil (nothing measured yet).
func (a *address) candidateStates(now time.Time) []balance.State {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.view.Load()
	switch {
	case a.ingress != nil:
		return a.ingress.Snapshot(now, v.http.list)
	case a.tcp != nil:
		return a.tcp.Snapshot(now, v.tcp.list)
	}
	return nil
}

// instanceStates is the balancing state of this site's http connectors,
// once a request was served by one.
func (a *address) instanceStates(now time.Time) []balance.State {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.instances == nil {
		return nil
	}
	return a.instances.Snapshot(now, a.view.Load().instances)
}

// allRemotes returns every pooled transport, for Close.
func (a *address) allRemotes() []idleCloser {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ts []idleCloser
	for _, r := range a.remotes {
		ts = append(ts, r.transport)
	}
	return ts
}
