package site

import (
	"math"
	"testing"

	"weft.dev/weft/internal/service"
	"weft.dev/weft/internal/siteid"
)

// A candidate whose first hop has no link (closed, its routes not yet
// withdrawn) is suspect, stalled and silent for ever, so that the
// balancer ranks it after every live one: a stream opened there fails at
// once. The site's own candidate is never suspect, nor an idle link.
func TestSuspectWithoutLink(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	linkSites(t, a, b)
	n := serviceNet{a.Site}
	if got := n.Suspect(nil); got != (service.Suspicion{}) {
		t.Errorf("own candidate: %+v", got)
	}
	if got := n.Suspect([]siteid.ID{b.id}); got != (service.Suspicion{}) {
		t.Errorf("idle link to b: %+v", got)
	}
	if got, want := n.Suspect([]siteid.ID{{9}, b.id}), (service.Suspicion{Suspect: true, Stalled: true, Silent: math.MaxInt64}); got != want {
		t.Errorf("no link to the first hop: %+v, want %+v", got, want)
	}
}
