package console

import (
	"time"

	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
)

// Graph is the network as one site sees it: the reachable sites and the
// links their records advertise, plus this site's own links that are not
// up, to sites it may no longer reach.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Node is one site.
type Node struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Self bool   `json:"self,omitempty"`
	// Reachable is false for a peer of a local link that is down and whose
	// record the site dropped.
	Reachable bool `json:"reachable"`
	// Hops is the number of links on the route from the viewing site.
	Hops int `json:"hops"`
}

// Edge is a link between two sites, once per pair.
type Edge struct {
	From string `json:"from"` // site ID
	To   string `json:"to"`   // site ID
	Cost uint32 `json:"cost"`
	RTT  string `json:"rtt,omitempty"`
	// State is up (both ends advertise it), one-way (only one does: it is
	// coming up or going down), or a local link's own state (connecting,
	// down, revoked) while it is not up.
	State string `json:"state"`
}

// Edge states besides a local link's own.
const (
	EdgeUp     = "up"
	EdgeOneWay = "one-way"
)

// GraphOf builds the graph from a route table and the viewing site's own
// links (apitype.Status.Links).
func GraphOf(t *routing.Table, local []resource.Link) Graph {
	g := Graph{Nodes: []Node{}, Edges: []Edge{}}
	self := t.Self()
	hops := map[string]int{}
	for _, r := range t.Sites() {
		hops[r.ID.String()] = len(r.Path)
	}
	type pair struct{ a, b string }
	key := func(x, y string) pair {
		if x > y {
			x, y = y, x
		}
		return pair{x, y}
	}
	at := map[pair]int{} // index in g.Edges
	seen := map[pair]string{}
	nodes := map[string]bool{}
	for _, rec := range t.Records() {
		id := rec.Site.String()
		nodes[id] = true
		g.Nodes = append(g.Nodes, Node{ID: id, Name: rec.Name, Self: rec.Site == self, Reachable: true, Hops: hops[id]})
	}
	for _, rec := range t.Records() {
		from := rec.Site.String()
		for _, l := range rec.Links {
			to := l.Peer.String()
			if !nodes[to] {
				continue
			}
			k := key(from, to)
			if i, ok := at[k]; ok {
				if seen[k] != from {
					g.Edges[i].State = EdgeUp
				}
				g.Edges[i].Cost = min(g.Edges[i].Cost, l.Cost)
				continue
			}
			at[k], seen[k] = len(g.Edges), from
			g.Edges = append(g.Edges, Edge{From: from, To: to, Cost: l.Cost, RTT: rtt(l.RTT), State: EdgeOneWay})
		}
	}
	for _, l := range local {
		peer := l.Status.Peer
		if peer == "" || l.Status.State == EdgeUp {
			continue
		}
		if !nodes[peer] {
			nodes[peer] = true
			g.Nodes = append(g.Nodes, Node{ID: peer, Name: l.Status.PeerName, Hops: 1})
		}
		e := Edge{From: self.String(), To: peer, Cost: l.Spec.Cost, State: l.Status.State}
		if i, ok := at[key(e.From, peer)]; ok {
			g.Edges[i] = e
			continue
		}
		at[key(e.From, peer)] = len(g.Edges)
		g.Edges = append(g.Edges, e)
	}
	return g
}

func rtt(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.Round(10 * time.Microsecond).String()
}
