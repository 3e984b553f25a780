package routing

import (
	"slices"
	"testing"
)

// TestRestrict: a restricted table keeps every route and drops from its
// candidates and records what the view dropped; the original is unchanged.
func TestRestrict(t *testing.T) {
	r := New(id(1), "a", 0)
	r.SetLocal([]Link{{Peer: id(2), Cost: 1}}, []Connector{{Address: "orders"}}, nil)
	r.Step(id(2), Record{Site: id(2), Name: "b", Seq: 1, Links: []Link{{Peer: id(1), Cost: 1}},
		Connectors: []Connector{{Address: "orders"}, {Address: "payments"}}, Interests: []string{"t:x", "t:y"}})
	full := r.Table()
	if same := full.Restrict(func(r *Record) *Record { return r }); same != full {
		t.Errorf("a view that keeps everything made a new table")
	}
	got := full.Restrict(func(r *Record) *Record {
		if r.Site != id(2) {
			return r
		}
		c := *r
		c.Connectors = []Connector{{Address: "payments"}}
		c.Interests = []string{"t:y"}
		return &c
	})
	if cs := got.Candidates("orders"); len(cs) != 1 || cs[0].Site != id(1) {
		t.Errorf("orders: %+v, want only the owner's", cs)
	}
	if cs := got.Candidates("payments"); len(cs) != 1 || cs[0].Site != id(2) || cs[0].Cost != 1 {
		t.Errorf("payments: %+v", cs)
	}
	if rt, ok := got.Route(id(2)); !ok || rt.Cost != 1 {
		t.Errorf("route to b: %+v %v", rt, ok)
	}
	if recs := got.Records(); !slices.Equal(recs[1].Interests, []string{"t:y"}) {
		t.Errorf("interests: %q", recs[1].Interests)
	}
	if cs := full.Candidates("orders"); len(cs) != 2 {
		t.Errorf("the original table changed: %+v", cs)
	}
}
