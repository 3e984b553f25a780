package routing

import (
	"cmp"
	"slices"
	"sync"

	"weft.dev/weft/internal/siteid"
)

// Table is an immutable snapshot of the routes from one site. It is safe to
// share between goroutines; every slice it returns is the caller's own.
type Table struct {
	self    int32 // index of the owning site
	g       *graph
	cost    []uint64
	pred    []int32
	names   sync.Once
	byName  []int32 // node indexes sorted by name, then ID
	addrs   sync.Once
	byAddr  map[string][]Candidate
	addrKey []string
}

// SiteRoute is the route to one reachable site.
type SiteRoute struct {
	ID   siteid.ID
	Name string
	Cost uint64
	// Path is the segment list: the sites after the owning site, up to and
	// including ID. It is nil for the owning site itself.
	Path []siteid.ID
}

// Candidate is one reachable connector for an address.
type Candidate struct {
	Site     siteid.ID
	SiteName string
	Cost     uint64
	Path     []siteid.ID // as in SiteRoute
	Protocol string
	Capacity uint32
}

// AddressInfo lists where one address is served.
type AddressInfo struct {
	Address    string
	Candidates []Candidate
}

// newTable computes the routes from self over all known records (sorted by
// Site, self among them) and reports which records are reachable. The table
// keeps only the reachable part of the graph.
func newTable(self siteid.ID, recs []*Record) (*Table, []bool) {
	full := buildGraph(recs)
	src, ok := full.index(self)
	if !ok {
		panic("routing: own record missing from the database")
	}
	dist, pred := full.shortest(src, nil, -1)
	reach := make([]bool, len(recs))
	newIdx := make([]int32, len(recs))
	n := 0
	for i, d := range dist {
		newIdx[i] = -1
		if d != maxDist {
			reach[i] = true
			newIdx[i] = int32(n)
			n++
		}
	}
	g := &graph{ids: make([]siteid.ID, 0, n), recs: make([]*Record, 0, n), off: make([]int32, 1, n+1)}
	t := &Table{g: g, self: newIdx[src], cost: make([]uint64, 0, n), pred: make([]int32, 0, n)}
	for i := range recs {
		if !reach[i] {
			continue
		}
		g.ids = append(g.ids, full.ids[i])
		g.recs = append(g.recs, recs[i])
		t.cost = append(t.cost, dist[i])
		p := pred[i]
		if p >= 0 {
			p = newIdx[p]
		}
		t.pred = append(t.pred, p)
		// An edge from a reachable site leads to a reachable site.
		for _, e := range full.edges(int32(i)) {
			g.adj = append(g.adj, edge{to: newIdx[e.to], cost: e.cost})
		}
		g.off = append(g.off, int32(len(g.adj)))
	}
	return t, reach
}

func (t *Table) sortNames() {
	g := t.g
	t.byName = make([]int32, len(g.ids))
	for i := range t.byName {
		t.byName[i] = int32(i)
	}
	slices.SortFunc(t.byName, func(a, b int32) int {
		return cmp.Or(cmp.Compare(g.recs[a].Name, g.recs[b].Name), cmp.Compare(a, b))
	})
}

// Self returns the ID of the site whose routes these are.
func (t *Table) Self() siteid.ID { return t.g.ids[t.self] }

func (t *Table) path(i int32) []siteid.ID {
	return t.pathFrom(i, t.pred)
}

func (t *Table) pathFrom(i int32, pred []int32) []siteid.ID {
	if i == t.self {
		return nil
	}
	n := 0
	for j := i; j != t.self; j = pred[j] {
		n++
	}
	p := make([]siteid.ID, n)
	for j := i; j != t.self; j = pred[j] {
		n--
		p[n] = t.g.ids[j]
	}
	return p
}

func (t *Table) route(i int32) SiteRoute {
	return SiteRoute{ID: t.g.ids[i], Name: t.g.recs[i].Name, Cost: t.cost[i], Path: t.path(i)}
}

// Sites returns every reachable site, the owning one included (Cost 0, nil
// Path), sorted by name and then ID.
func (t *Table) Sites() []SiteRoute {
	t.names.Do(t.sortNames)
	out := make([]SiteRoute, len(t.byName))
	for k, i := range t.byName {
		out[k] = t.route(i)
	}
	return out
}

// Route returns the route to dst, or false if dst is not reachable.
func (t *Table) Route(dst siteid.ID) (SiteRoute, bool) {
	i, ok := t.g.index(dst)
	if !ok {
		return SiteRoute{}, false
	}
	return t.route(i), true
}

func (t *Table) indexAddresses() {
	t.byAddr = make(map[string][]Candidate)
	for i, r := range t.g.recs {
		for _, c := range r.Connectors {
			t.byAddr[c.Address] = append(t.byAddr[c.Address], Candidate{
				Site: r.Site, SiteName: r.Name, Cost: t.cost[i], Path: t.path(int32(i)),
				Protocol: c.Protocol, Capacity: c.Capacity,
			})
		}
	}
	for a, cs := range t.byAddr {
		// Stable, so one site's connectors keep their advertised order.
		slices.SortStableFunc(cs, func(x, y Candidate) int {
			return cmp.Or(cmp.Compare(x.Cost, y.Cost), x.Site.Compare(y.Site))
		})
		t.addrKey = append(t.addrKey, a)
	}
	slices.Sort(t.addrKey)
}

func cloneCandidates(cs []Candidate) []Candidate {
	out := slices.Clone(cs)
	for i := range out {
		out[i].Path = slices.Clone(out[i].Path)
	}
	return out
}

// Candidates returns the reachable connectors for address, the owning
// site's included (Cost 0), sorted by cost and then site ID. A site with
// several connectors for the address appears once per connector.
func (t *Table) Candidates(address string) []Candidate {
	t.addrs.Do(t.indexAddresses)
	return cloneCandidates(t.byAddr[address])
}

// Addresses returns every address served at a reachable site, sorted.
func (t *Table) Addresses() []AddressInfo {
	t.addrs.Do(t.indexAddresses)
	out := make([]AddressInfo, len(t.addrKey))
	for i, a := range t.addrKey {
		out[i] = AddressInfo{Address: a, Candidates: cloneCandidates(t.byAddr[a])}
	}
	return out
}

// DisjointPath returns the cheapest path to dst whose transit sites (all
// but dst) include none of the transit sites of avoid, which is a segment
// list such as the primary path of a request. Ties break as for routes.
// It reports false if dst is unreachable or every path crosses avoid.
func (t *Table) DisjointPath(dst siteid.ID, avoid []siteid.ID) ([]siteid.ID, bool) {
	d, ok := t.g.index(dst)
	if !ok {
		return nil, false
	}
	if d == t.self {
		return nil, true
	}
	skip := make([]bool, len(t.g.ids))
	for k := 0; k < len(avoid)-1; k++ {
		if i, ok := t.g.index(avoid[k]); ok {
			skip[i] = true
		}
	}
	dist, pred := t.g.shortest(t.self, skip, d)
	if dist[d] == maxDist {
		return nil, false
	}
	return t.pathFrom(d, pred), true
}

// Records returns copies of the records of every reachable site, in ID
// order.
func (t *Table) Records() []Record {
	out := make([]Record, len(t.g.recs))
	for i, r := range t.g.recs {
		out[i] = cloneRecord(r)
	}
	return out
}

// Links returns the links id advertises (whether or not the far ends
// confirm them), or nil if id is not reachable.
func (t *Table) Links(id siteid.ID) []Link {
	i, ok := t.g.index(id)
	if !ok {
		return nil
	}
	return slices.Clone(t.g.recs[i].Links)
}

// SealKey returns the end-to-end seal key that site id advertises, or
// false if id is not reachable or advertises none.
func (t *Table) SealKey(id siteid.ID) ([SealKeyLen]byte, bool) {
	i, ok := t.g.index(id)
	if !ok || t.g.recs[i].SealKey == ([SealKeyLen]byte{}) {
		return [SealKeyLen]byte{}, false
	}
	return t.g.recs[i].SealKey, true
}

// PrevSealKey returns the seal key that site id's current one replaced
// and that id still accepts, or false if none.
func (t *Table) PrevSealKey(id siteid.ID) ([SealKeyLen]byte, bool) {
	i, ok := t.g.index(id)
	if !ok || t.g.recs[i].PrevSealKey == ([SealKeyLen]byte{}) {
		return [SealKeyLen]byte{}, false
	}
	return t.g.recs[i].PrevSealKey, true
}

// HasFeature reports whether site id is reachable and sets the Feature
// bit f in its record.
func (t *Table) HasFeature(id siteid.ID, f uint64) bool {
	i, ok := t.g.index(id)
	return ok && t.g.recs[i].Features&f != 0
}

func cloneRecord(r *Record) Record {
	c := *r
	c.Links = slices.Clone(r.Links)
	c.Connectors = slices.Clone(r.Connectors)
	c.Interests = slices.Clone(r.Interests)
	c.Extensions = slices.Clone(r.Extensions)
	return c
}
