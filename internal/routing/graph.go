package routing

import (
	"slices"

	"weft.dev/weft/internal/siteid"
)

// edge is one two-way-checked hop. cost is already at least 1.
type edge struct {
	to   int32
	cost uint32
}

// graph is the link graph over a set of records, in compressed rows: the
// edges of node i are adj[off[i]:off[i+1]]. Nodes are numbered in site ID
// order, so every tie-break "by lower index" is a tie-break by lower ID.
type graph struct {
	ids  []siteid.ID
	recs []*Record
	off  []int32
	adj  []edge
}

func (g *graph) edges(i int32) []edge { return g.adj[g.off[i]:g.off[i+1]] }

func (g *graph) index(id siteid.ID) (int32, bool) {
	i, ok := slices.BinarySearchFunc(g.ids, id, siteid.ID.Compare)
	return int32(i), ok
}

// buildGraph keeps an edge A->B only when A lists B and B lists A (the
// OSPF two-way check): a one-sided claim may be stale or a lie, and using it
// would send traffic into a link that is gone. recs must be sorted by Site
// with no repeats.
func buildGraph(recs []*Record) *graph {
	g := &graph{recs: recs, ids: make([]siteid.ID, len(recs))}
	// A map beats binary search here: there are several links per site.
	pos := make(map[siteid.ID]int32, len(recs))
	for i, r := range recs {
		g.ids[i] = r.Site
		pos[r.Site] = int32(i)
	}
	// First the one-sided claims, each node's sorted by peer so the
	// reverse check is a binary search.
	claimOff := make([]int32, len(recs)+1)
	var claims []edge
	for i, r := range recs {
		start := len(claims)
		for _, l := range r.Links {
			if j, ok := pos[l.Peer]; ok && int(j) != i {
				claims = append(claims, edge{to: j, cost: max(l.Cost, 1)})
			}
		}
		slices.SortFunc(claims[start:], func(a, b edge) int { return int(a.to) - int(b.to) })
		claimOff[i+1] = int32(len(claims))
	}
	lists := func(from, to int32) bool {
		seg := claims[claimOff[from]:claimOff[from+1]]
		_, ok := slices.BinarySearchFunc(seg, to, func(e edge, t int32) int { return int(e.to) - int(t) })
		return ok
	}
	g.off = make([]int32, len(recs)+1)
	g.adj = make([]edge, 0, len(claims))
	for i := range recs {
		for _, e := range claims[claimOff[i]:claimOff[i+1]] {
			if lists(e.to, int32(i)) {
				g.adj = append(g.adj, e)
			}
		}
		g.off[i+1] = int32(len(g.adj))
	}
	return g
}

type heapItem struct {
	d uint64
	i int32
}

func less(a, b heapItem) bool { return a.d < b.d || a.d == b.d && a.i < b.i }

// shortest runs Dijkstra from src. Among equal-cost paths to a node it
// keeps the one whose last hop comes from the lowest-numbered (lowest ID)
// predecessor; with every hop costing at least 1 each predecessor is
// settled before the node, so the rule is exact and the result does not
// depend on the order of links in records. Nodes with skip[v] set are
// never entered, except dst (pass -1 for none). pred[src] and pred of
// unreached nodes are -1; dist of unreached nodes is maxDist.
func (g *graph) shortest(src int32, skip []bool, dst int32) (dist []uint64, pred []int32) {
	n := len(g.ids)
	dist = make([]uint64, n)
	pred = make([]int32, n)
	for i := range dist {
		dist[i] = maxDist
		pred[i] = -1
	}
	done := make([]bool, n)
	dist[src] = 0
	h := []heapItem{{0, src}}
	for len(h) > 0 {
		it := h[0]
		h = heapPop(h)
		u := it.i
		if done[u] || it.d != dist[u] {
			continue
		}
		done[u] = true
		for _, e := range g.edges(u) {
			v := e.to
			if done[v] || skip != nil && skip[v] && v != dst {
				continue
			}
			nd := dist[u] + uint64(e.cost)
			if nd < dist[v] {
				dist[v], pred[v] = nd, u
				h = heapPush(h, heapItem{nd, v})
			} else if nd == dist[v] && u < pred[v] {
				pred[v] = u
			}
		}
	}
	return dist, pred
}

const maxDist = ^uint64(0)

func heapPush(h []heapItem, it heapItem) []heapItem {
	h = append(h, it)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []heapItem) []heapItem {
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(h) && less(h[l], h[m]) {
			m = l
		}
		if r := l + 1; r < len(h) && less(h[r], h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return h
}
