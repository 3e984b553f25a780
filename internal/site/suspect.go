package site

import (
	"weft.dev/weft/internal/service"
	"weft.dev/weft/internal/siteid"
)

var (
	_ service.Suspecter   = serviceNet{}
	_ service.PolicyHider = serviceNet{}
)

// Suspect reports whether the link to path's first hop is under suspicion
// (link.Session.Suspect), so that the balancer routes new streams around
// it while its probe is outstanding, and whether it looks stalled
// (link.Session.Stalled), so that it comes after links merely slow. The
// site's own candidate (no path) never is.
func (n serviceNet) Suspect(path []siteid.ID) (suspect, stalled bool) {
	if len(path) == 0 {
		return false, false
	}
	sess := n.s.session(path[0])
	if sess == nil || !sess.Suspect() {
		return false, false
	}
	return true, sess.Stalled()
}

// PolicyHidden names the sites that serve address but whose connectors the
// address policy keeps from this site's clients (service.PolicyHider).
func (n serviceNet) PolicyHidden(address string) []string {
	if m := n.s.pol.hiddenBy.Load(); m != nil {
		return (*m)[address]
	}
	return nil
}
