package routing

import (
	"container/heap"
	"fmt"
	"maps"
	"slices"
	"testing"

	"weft.dev/weft/internal/siteid"
)

// sim wires routers together the way a site would: it keeps each site's
// configured links, calls SetLocal and NeighborUp/Down on changes, and
// delivers Ready messages until nothing is left to send.
type sim struct {
	t      testing.TB
	sites  []*simSite // in the order added, which is also delivery order
	byID   map[siteid.ID]*simSite
	byName map[string]*simSite
	// wire makes every message go through MarshalBinary/UnmarshalBinary.
	wire bool
	// trace, if set, is called for every delivered message.
	trace func(from, to siteid.ID, rec Record)
	// eager makes each site compute its table whenever Ready reports a
	// change, as a real site does; without it tables are computed only
	// when checked, which is much cheaper for big networks but exercises
	// fewer intermediate states.
	eager bool
}

type simSite struct {
	id        siteid.ID
	name      string
	r         *Router
	links     map[siteid.ID]Link
	conns     []Connector
	interests []string
}

func newSim(t testing.TB) *sim {
	return &sim{t: t, byID: map[siteid.ID]*simSite{}, byName: map[string]*simSite{}}
}

func (s *sim) add(id siteid.ID, name string, seqBase uint64) *simSite {
	if _, ok := s.byID[id]; ok {
		s.t.Fatalf("site %s added twice", name)
	}
	site := &simSite{id: id, name: name, r: New(id, name, seqBase), links: map[siteid.ID]Link{}}
	s.sites = append(s.sites, site)
	s.byID[id] = site
	s.byName[name] = site
	return site
}

func (s *sim) site(name string) *simSite {
	site, ok := s.byName[name]
	if !ok {
		s.t.Fatalf("no site %q", name)
	}
	return site
}

func (s *sim) name(id siteid.ID) string {
	if site, ok := s.byID[id]; ok {
		return site.name
	}
	return id.String()
}

// push originates the site's configured state.
func (s *sim) push(site *simSite) {
	links := slices.Collect(maps.Values(site.links))
	site.r.SetLocal(links, site.conns, site.interests)
}

// link configures a link (or changes its costs) on both sides.
func (s *sim) link(a, b *simSite, costAB, costBA uint32) {
	_, existed := a.links[b.id]
	a.links[b.id] = Link{Peer: b.id, Cost: costAB}
	b.links[a.id] = Link{Peer: a.id, Cost: costBA}
	s.push(a)
	s.push(b)
	if !existed {
		a.r.NeighborUp(b.id)
		b.r.NeighborUp(a.id)
	}
}

func (s *sim) unlink(a, b *simSite) {
	if _, ok := a.links[b.id]; !ok {
		s.t.Fatalf("no link %s-%s", a.name, b.name)
	}
	delete(a.links, b.id)
	delete(b.links, a.id)
	a.r.NeighborDown(b.id)
	b.r.NeighborDown(a.id)
	s.push(a)
	s.push(b)
}

// partition cuts every link of site.
func (s *sim) partition(site *simSite) {
	for _, peer := range slices.SortedFunc(maps.Keys(site.links), siteid.ID.Compare) {
		s.unlink(site, s.byID[peer])
	}
}

// restart replaces the site's router with a fresh one, as after a crash
// that its neighbors noticed only as a session reset: they keep the link
// configured, so they still hold its old record.
func (s *sim) restart(site *simSite, seqBase uint64) {
	site.r = New(site.id, site.name, seqBase)
	s.push(site)
	for _, peer := range slices.SortedFunc(maps.Keys(site.links), siteid.ID.Compare) {
		p := s.byID[peer]
		p.r.NeighborDown(site.id)
		p.r.NeighborUp(site.id)
		site.r.NeighborUp(peer)
	}
}

type stabilizeStats struct {
	rounds, messages int
	changed          []string // sites that reported TableChanged, sorted
}

// stabilize delivers messages until a full round sends none. Each site's
// batch is delivered right away, so one round can carry a record many hops.
func (s *sim) stabilize() stabilizeStats {
	var st stabilizeStats
	changed := map[string]bool{}
	for {
		st.rounds++
		if st.rounds > 10*len(s.sites)+100 {
			s.t.Fatalf("no quiescence after %d rounds, %d messages", st.rounds, st.messages)
		}
		n := 0
		for _, site := range s.sites {
			rd := site.r.Ready()
			if rd.TableChanged {
				changed[site.name] = true
				if s.eager {
					site.r.Table()
				}
			}
			site.r.Advance()
			for _, m := range rd.Messages {
				if _, ok := site.links[m.To]; !ok {
					s.t.Fatalf("%s sent to %s, which is not its neighbor", site.name, s.name(m.To))
				}
				rec := m.Record
				if s.wire {
					b, err := rec.MarshalBinary()
					if err != nil {
						s.t.Fatalf("%s: marshal: %v", site.name, err)
					}
					rec = Record{}
					if err := rec.UnmarshalBinary(b); err != nil {
						s.t.Fatalf("%s: unmarshal: %v", site.name, err)
					}
				}
				if s.trace != nil {
					s.trace(site.id, m.To, rec)
				}
				s.byID[m.To].r.Step(site.id, rec)
				n++
			}
		}
		st.messages += n
		if n == 0 {
			break
		}
	}
	st.changed = slices.Sorted(maps.Keys(changed))
	return st
}

// truth is the reference answer, computed from the configuration alone
// with a separate Dijkstra: textbook container/heap, then the predecessor
// of each site chosen afterwards as the lowest ID among those on a
// shortest path, which is the router's documented tie-break.
// refGraph is the configured graph in plain arrays, for the reference.
type refGraph struct {
	idx map[siteid.ID]int
	ids []siteid.ID
	adj [][]refEdge // adj[u]: two-way links out of u with u's cost
	in  [][]refEdge // in[v]: the same links seen from v, with the far end's cost
}

type refEdge struct {
	to   int
	cost uint64
}

func (s *sim) refGraph() *refGraph {
	g := &refGraph{idx: map[siteid.ID]int{}}
	for i, site := range s.sites {
		g.idx[site.id] = i
		g.ids = append(g.ids, site.id)
	}
	g.adj = make([][]refEdge, len(s.sites))
	g.in = make([][]refEdge, len(s.sites))
	for u, site := range s.sites {
		for peer, l := range site.links {
			if _, back := s.byID[peer].links[site.id]; !back {
				continue
			}
			v := g.idx[peer]
			c := uint64(max(l.Cost, 1))
			g.adj[u] = append(g.adj[u], refEdge{v, c})
			g.in[v] = append(g.in[v], refEdge{u, c})
		}
	}
	return g
}

const unreached = ^uint64(0)

func (g *refGraph) truth(src int) *refRoutes {
	dist := make([]uint64, len(g.ids))
	for i := range dist {
		dist[i] = unreached
	}
	dist[src] = 0
	pq := &distHeap{{src, 0}}
	for pq.Len() > 0 {
		it := heap.Pop(pq).(distItem)
		if it.d != dist[it.i] {
			continue
		}
		for _, e := range g.adj[it.i] {
			if nd := it.d + e.cost; nd < dist[e.to] {
				dist[e.to] = nd
				heap.Push(pq, distItem{e.to, nd})
			}
		}
	}
	pred := make([]int, len(g.ids))
	for v, d := range dist {
		pred[v] = -1
		if d == unreached || v == src {
			continue
		}
		for _, e := range g.in[v] {
			u := e.to
			if dist[u] != unreached && dist[u]+e.cost == d && (pred[v] < 0 || g.ids[u].Compare(g.ids[pred[v]]) < 0) {
				pred[v] = u
			}
		}
	}
	return &refRoutes{g: g, src: src, dist: dist, pred: pred}
}

// refRoutes are the reference routes from src: pred[v] is the site before
// v on its path, dist[v] is unreached if v is not reachable.
type refRoutes struct {
	g    *refGraph
	src  int
	dist []uint64
	pred []int
}

func (w *refRoutes) path(v int) []siteid.ID {
	var path []siteid.ID
	for cur := v; cur != w.src; cur = w.pred[cur] {
		path = append(path, w.g.ids[cur])
	}
	slices.Reverse(path)
	return path
}

// samePath compares p with the reference path to v without building it.
func (w *refRoutes) samePath(v int, p []siteid.ID) bool {
	k := len(p)
	for cur := v; cur != w.src; cur = w.pred[cur] {
		k--
		if k < 0 || p[k] != w.g.ids[cur] {
			return false
		}
	}
	return k == 0
}

type distItem struct {
	i int
	d uint64
}
type distHeap []distItem

func (h distHeap) Len() int           { return len(h) }
func (h distHeap) Less(i, j int) bool { return h[i].d < h[j].d }
func (h distHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *distHeap) Push(x any)        { *h = append(*h, x.(distItem)) }
func (h *distHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// check compares every router with the reference and returns what differs
// (at most a few lines per site). It also checks that paths do not repeat
// a site and that each database holds exactly the reachable sites.
func (s *sim) check() []string {
	var errs []string
	g := s.refGraph()
	seen := make([]int, len(s.sites)) // stamp of the last route that visited each site
	stamp := 0
	for i, site := range s.sites {
		errs = append(errs, s.checkSite(site, g.truth(i), seen, &stamp)...)
	}
	return errs
}

func (s *sim) checkSite(site *simSite, want *refRoutes, seen []int, stamp *int) []string {
	var errs []string
	fail := func(format string, args ...any) {
		if len(errs) < 5 {
			errs = append(errs, site.name+": "+fmt.Sprintf(format, args...))
		}
	}
	g := want.g
	reachable := 0
	for _, d := range want.dist {
		if d != unreached {
			reachable++
		}
	}
	tab := site.r.Table()
	if tab.Self() != site.id {
		fail("table of %s", s.name(tab.Self()))
	}
	got := tab.Sites()
	if len(got) != reachable {
		fail("%d sites in table, want %d", len(got), reachable)
	}
	for i, sr := range got {
		if i > 0 && (got[i-1].Name > sr.Name || got[i-1].Name == sr.Name && got[i-1].ID.Compare(sr.ID) >= 0) {
			fail("sites not sorted at %s", sr.Name)
		}
		v := g.idx[sr.ID]
		if want.dist[v] == unreached {
			fail("%s in table but unreachable", s.name(sr.ID))
			continue
		}
		if sr.Cost != want.dist[v] || !want.samePath(v, sr.Path) {
			fail("route to %s: cost %d path %s, want cost %d path %s", s.name(sr.ID), sr.Cost, s.pathString(sr.Path), want.dist[v], s.pathString(want.path(v)))
		}
		*stamp++
		seen[want.src] = *stamp
		for _, hop := range sr.Path {
			h, ok := g.idx[hop]
			if !ok {
				fail("route to %s goes through unknown %s", s.name(sr.ID), hop)
				break
			}
			if seen[h] == *stamp {
				fail("route to %s repeats %s", s.name(sr.ID), s.name(hop))
			}
			seen[h] = *stamp
		}
		if sr.Name != s.name(sr.ID) {
			fail("route to %s has name %q", s.name(sr.ID), sr.Name)
		}
	}
	if len(site.r.db) != reachable {
		fail("database holds %d records, %d sites reachable", len(site.r.db), reachable)
	}
	for id, rec := range site.r.db {
		if want.dist[g.idx[id]] == unreached {
			fail("database holds unreachable %s", s.name(id))
		}
		if want := s.byID[id].r.local.Seq; rec.Seq != want {
			fail("database holds %s seq %d, origin is at %d", s.name(id), rec.Seq, want)
		}
	}
	return errs
}

func (s *sim) pathString(p []siteid.ID) string {
	names := make([]string, len(p))
	for i, id := range p {
		names[i] = s.name(id)
	}
	return fmt.Sprint(names)
}
