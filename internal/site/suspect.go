package site

import (
	"math"

	"weft.dev/weft/internal/service"
	"weft.dev/weft/internal/siteid"
)

var (
	_ service.Suspecter   = serviceNet{}
	_ service.PolicyHider = serviceNet{}
)

// Suspect reports whether the link to path's first hop is under suspicion
// (link.Session.Suspect) or its peer has missed a PING
// (link.Session.Overdue), so that the balancer routes new streams around
// it, whether it looks stalled
// (link.Session.Stalled), so that it comes after links merely slow, and
// for how long it has been silent (link.Session.Silent). A first hop with
// no link at all, closed while the route through it is not withdrawn yet,
// is stalled and silent for ever: a stream opened there fails at once. The
// site's own candidate (no path) is never suspect.
func (n serviceNet) Suspect(path []siteid.ID) service.Suspicion {
	if len(path) == 0 {
		return service.Suspicion{}
	}
	sess := n.s.session(path[0])
	if sess == nil {
		return service.Suspicion{Suspect: true, Stalled: true, Silent: math.MaxInt64}
	}
	if !sess.Suspect() && !sess.Overdue() {
		return service.Suspicion{}
	}
	return service.Suspicion{Suspect: true, Stalled: sess.Stalled(), Silent: sess.Silent()}
}

// PolicyHidden names the sites that serve address but whose connectors the
// address policy keeps from this site's clients (service.PolicyHider).
func (n serviceNet) PolicyHidden(address string) []string {
	if m := n.s.pol.hiddenBy.Load(); m != nil {
		return (*m)[address]
	}
	return nil
}
