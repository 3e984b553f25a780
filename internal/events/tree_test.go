package events

import (
	"testing"

	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// tableAt builds the route table of site self from one record per site:
// links are given once per pair and listed on both ends, as the routing
// two-way check needs.
func tableAt(self siteid.ID, links [][3]int, interests map[siteid.ID][]string) *routing.Table {
	recs := map[siteid.ID]*routing.Record{}
	rec := func(id siteid.ID) *routing.Record {
		if recs[id] == nil {
			recs[id] = &routing.Record{Site: id, Name: id.String(), Seq: 1, Interests: interests[id]}
		}
		return recs[id]
	}
	for _, l := range links {
		a, b := id(byte(l[0])), id(byte(l[1]))
		rec(a).Links = append(rec(a).Links, routing.Link{Peer: b, Cost: uint32(l[2])})
		rec(b).Links = append(rec(b).Links, routing.Link{Peer: a, Cost: uint32(l[2])})
	}
	r := routing.New(self, self.String(), 0)
	own := rec(self)
	r.SetLocal(own.Links, nil, own.Interests)
	for sid, rc := range recs {
		if sid != self {
			r.Step(sid, *rc)
		}
	}
	return r.Table()
}

// TestNextQueueSite: a volatile queue event goes to the nearest interested
// site not yet tried, the owner first when it has a consumer, and nowhere
// once every candidate or MaxQueueTries sites were tried.
func TestNextQueueSite(t *testing.T) {
	a, b, c, d, e := id(1), id(2), id(3), id(4), id(5)
	// a-b 1, b-c 1, a-d 5, d-e 1; e has only a topic interest.
	links := [][3]int{{1, 2, 1}, {2, 3, 1}, {1, 4, 5}, {4, 5, 1}}
	q := []string{Interest(Queue, "jobs.*")}
	in := map[siteid.ID][]string{a: q, b: q, c: q, d: {Interest(Queue, ">")}, e: {Interest(Topic, ">")}}
	ta, tb := tableAt(a, links, in), tableAt(b, links, in)
	for _, tc := range []struct {
		name    string
		t       *routing.Table
		subject string
		tried   []siteid.ID
		want    siteid.ID // zero: none
	}{
		{"owner first", ta, "jobs.x", nil, a},
		{"nearest after the owner", ta, "jobs.x", []siteid.ID{a}, b},
		{"by cost, not by hops", ta, "jobs.x", []siteid.ID{a, b}, c},
		{"farthest last", ta, "jobs.x", []siteid.ID{a, b, c}, d},
		{"only a wildcard matches", ta, "other", nil, d},
		{"topic interest is not a consumer", ta, "other", []siteid.ID{d}, siteid.ID{}},
		{"tries are bounded", ta, "other", []siteid.ID{e, e, e, e}, siteid.ID{}},
		{"a full site passes on from its own table", tb, "jobs.x", []siteid.ID{a, b}, c},
		{"everyone tried", tb, "jobs.x", []siteid.ID{a, b, c, d}, siteid.ID{}},
	} {
		r, ok := NextQueueSite(Interested(tc.t, Queue, tc.subject), tc.tried)
		if !ok {
			if !tc.want.IsZero() {
				t.Errorf("%s: none, want %v", tc.name, tc.want)
			}
			continue
		}
		if r.ID != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, r.ID, tc.want)
		}
		if want, _ := tc.t.Route(r.ID); len(r.Path) != len(want.Path) {
			t.Errorf("%s: path %v, want the table's %v", tc.name, r.Path, want.Path)
		}
	}
}
