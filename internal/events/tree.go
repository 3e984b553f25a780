package events

import (
	"slices"

	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// Interested returns the sites whose records hold an interest of kind k
// matching subject, nearest first (by route cost, then site ID), with their
// routes from t's owner. The owner is included (cost 0) when it is interested.
func Interested(t *routing.Table, k Kind, subject string) []routing.SiteRoute {
	var out []routing.SiteRoute
	for _, rec := range t.Records() {
		if !MatchesAny(rec.Interests, k, subject) {
			continue
		}
		if r, ok := t.Route(rec.Site); ok {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b routing.SiteRoute) int {
		if a.Cost != b.Cost {
			if a.Cost < b.Cost {
				return -1
			}
			return 1
		}
		return a.ID.Compare(b.ID)
	})
	return out
}

// MatchesAny reports whether one of a site's advertised interests of kind k
// matches subject.
func MatchesAny(interests []string, k Kind, subject string) bool {
	for _, s := range interests {
		if ik, p, ok := ParseInterest(s); ok && ik == k && Match(p, subject) {
			return true
		}
	}
	return false
}

// MaxQueueTries bounds the sites a volatile queue event visits in search of
// a consumer with room, so that an event for a queue whose consumers are all
// full crosses a bounded number of links before it is dropped.
const MaxQueueTries = 4

// NextQueueSite picks where a volatile queue event goes next: the first of
// interested (Interested for the queue's subject, nearest first, from the
// site deciding) that is not in tried, the sites whose consumers had no
// room. ok is false when no such site is left or tried already holds
// MaxQueueTries sites; the caller then drops the event.
func NextQueueSite(interested []routing.SiteRoute, tried []siteid.ID) (r routing.SiteRoute, ok bool) {
	if len(tried) >= MaxQueueTries {
		return r, false
	}
	for _, r := range interested {
		if !slices.Contains(tried, r.ID) {
			return r, true
		}
	}
	return r, false
}

// Branch is one copy of an event leaving a site: the neighbour it goes to and
// the paths it still has to follow, each starting with that neighbour and
// ending at a destination site.
type Branch struct {
	Next  siteid.ID
	Paths [][]siteid.ID
}

// Split is the multicast step at one site: given the paths an event must still
// follow (each starting at this site, self, or empty for "deliver here"), it
// reports whether the event is delivered at self and the branches to forward,
// one per distinct next hop, so an event crosses each link at most once. Paths
// whose first segment is not self are dropped: they were misrouted.
//
// The publishing site calls it with the route paths of the interested sites
// prefixed by itself; together the paths form the shortest-path tree from the
// publisher, and every transit site forwards along the publisher's tree
// without consulting its own table, so a tree has no loops even while tables
// disagree.
func Split(self siteid.ID, paths [][]siteid.ID) (local bool, branches []Branch) {
	// Branches are found by a scan while few, as they are at a publisher,
	// and by an index beyond: a frame from a neighbour may carry MaxPaths
	// paths, and scanning for each would cost MaxPaths² per frame.
	var index map[siteid.ID]int
	for _, p := range paths {
		if len(p) == 0 || p[0] != self {
			continue
		}
		if len(p) == 1 {
			local = true
			continue
		}
		rest := p[1:]
		i, ok := index[rest[0]]
		if index == nil {
			i = slices.IndexFunc(branches, func(b Branch) bool { return b.Next == rest[0] })
			ok = i >= 0
		}
		if !ok {
			branches = append(branches, Branch{Next: rest[0]})
			i = len(branches) - 1
			if index != nil {
				index[rest[0]] = i
			}
		}
		branches[i].Paths = append(branches[i].Paths, rest)
		if index == nil && len(branches) > splitScan {
			index = make(map[siteid.ID]int, len(branches))
			for j, b := range branches {
				index[b.Next] = j
			}
		}
	}
	return local, branches
}

// splitScan is how many branches Split finds by a scan.
const splitScan = 16

// TreePaths turns routes from self into the paths Split takes.
func TreePaths(self siteid.ID, routes []routing.SiteRoute) [][]siteid.ID {
	out := make([][]siteid.ID, len(routes))
	for i, r := range routes {
		out[i] = append([]siteid.ID{self}, r.Path...)
	}
	return out
}
