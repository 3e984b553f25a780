package console

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

func sid(b byte) siteid.ID { return siteid.ID{15: b} }

// line builds the table of site a in a - b - c; a and b advertise
// different costs for their link.
func line(t *testing.T) *routing.Table {
	t.Helper()
	r := routing.New(sid(1), "a", 0)
	if err := r.SetLocal([]routing.Link{{Peer: sid(2), Cost: 5, RTT: time.Millisecond}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	r.NeighborUp(sid(2))
	r.Step(sid(2), routing.Record{Site: sid(2), Name: "b", Seq: 1, Links: []routing.Link{{Peer: sid(1), Cost: 3}, {Peer: sid(3), Cost: 1}}})
	r.Step(sid(2), routing.Record{Site: sid(3), Name: "c", Seq: 1, Links: []routing.Link{{Peer: sid(2), Cost: 1}}})
	return r.Table()
}

func edges(g Graph) []string {
	names := map[string]string{}
	for _, n := range g.Nodes {
		names[n.ID] = n.Name
	}
	var out []string
	for _, e := range g.Edges {
		out = append(out, fmt.Sprintf("%s-%s cost %d %s %s", names[e.From], names[e.To], e.Cost, e.State, e.RTT))
	}
	slices.Sort(out)
	return out
}

func TestGraphOf(t *testing.T) {
	down := resource.Link{Spec: resource.LinkSpec{Cost: 7}, Status: resource.LinkStatus{Peer: sid(4).String(), PeerName: "d", State: "down"}}
	up := resource.Link{Status: resource.LinkStatus{Peer: sid(2).String(), PeerName: "b", State: "up"}}
	g := GraphOf(line(t), []resource.Link{up, down})

	want := []string{"a-b cost 3 up 1ms", "a-d cost 7 down ", "b-c cost 1 up "}
	if got := edges(g); !slices.Equal(got, want) {
		t.Fatalf("edges %q, want %q", got, want)
	}
	var nodes []string
	for _, n := range g.Nodes {
		nodes = append(nodes, fmt.Sprintf("%s self=%v reachable=%v hops=%d", n.Name, n.Self, n.Reachable, n.Hops))
	}
	slices.Sort(nodes)
	wantNodes := []string{"a self=true reachable=true hops=0", "b self=false reachable=true hops=1", "c self=false reachable=true hops=2", "d self=false reachable=false hops=1"}
	if !slices.Equal(nodes, wantNodes) {
		t.Fatalf("nodes %q, want %q", nodes, wantNodes)
	}
}

// A local link that is not up shows its own state over what the records
// say, so that a dying link shows before the records catch up.
func TestGraphLocalStateWins(t *testing.T) {
	conn := resource.Link{Spec: resource.LinkSpec{Cost: 5}, Status: resource.LinkStatus{Peer: sid(2).String(), PeerName: "b", State: "connecting"}}
	got := edges(GraphOf(line(t), []resource.Link{conn}))
	want := []string{"a-b cost 5 connecting ", "b-c cost 1 up "}
	if !slices.Equal(got, want) {
		t.Fatalf("edges %q, want %q", got, want)
	}
}
