package site

import (
	"weft.dev/weft/internal/service"
	"weft.dev/weft/internal/siteid"
)

var _ service.Suspecter = serviceNet{}

// Suspect reports whether the link to path's first hop is under suspicion
// (link.Session.Suspect), so that the balancer routes new streams around
// it while its probe is outstanding. The site's own candidate (no path)
// never is.
func (n serviceNet) Suspect(path []siteid.ID) bool {
	if len(path) == 0 {
		return false
	}
	sess := n.s.session(path[0])
	return sess != nil && sess.Suspect()
}
