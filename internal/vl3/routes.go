package vl3

import (
	"fmt"
	"net/netip"
	"slices"

	"weft.dev/weft/internal/siteid"
)

// Routes is the packet routing table of every network, built from the
// announcements in the route table: which site owns the prefix a
// destination address is in. It is immutable once built.
type Routes struct {
	nets map[string]*netRoutes
	// hosts maps "<attachment>.<network>.weft." to its address.
	hosts map[string]netip.Addr
	// Conflicts describe announcements that were ignored: a network with
	// two CIDRs, or one prefix claimed by two sites.
	Conflicts []string
}

type netRoutes struct {
	cidr netip.Prefix
	// owners are sorted by prefix; prefixes do not overlap.
	owners []Announcement
}

// BuildRoutes makes the routing table from anns and the attachments' names
// in hosts. Where sites disagree, the announcement of the lower site ID
// wins, so that every site decides alike: on a network's CIDR, and on a
// prefix two sites claimed at once. Of two hosts of one name, the first
// wins.
func BuildRoutes(anns []Announcement, hosts []Host) *Routes {
	anns = slices.Clone(anns)
	slices.SortFunc(anns, func(a, b Announcement) int { return a.Site.Compare(b.Site) })
	r := &Routes{nets: map[string]*netRoutes{}, hosts: map[string]netip.Addr{}}
	for _, h := range hosts {
		fqdn := h.Name + "." + h.Network + ".weft."
		if _, dup := r.hosts[fqdn]; dup {
			r.Conflicts = append(r.Conflicts, fmt.Sprintf("two attachments are named %s: the second, %s, is not in DNS", fqdn, h.IP))
			continue
		}
		r.hosts[fqdn] = h.IP
	}
	for _, a := range anns {
		n := r.nets[a.Network]
		switch {
		case n == nil:
			n = &netRoutes{cidr: a.CIDR}
			r.nets[a.Network] = n
		case n.cidr != a.CIDR:
			r.Conflicts = append(r.Conflicts, fmt.Sprintf("site %s announces network %s as %s, a site with a lower ID as %s: ignored", a.Site, a.Network, a.CIDR, n.cidr))
			continue
		}
		if !a.Prefix.IsValid() {
			continue
		}
		if i := slices.IndexFunc(n.owners, func(o Announcement) bool { return o.Prefix.Overlaps(a.Prefix) }); i >= 0 {
			r.Conflicts = append(r.Conflicts, fmt.Sprintf("site %s claims %s of network %s, which site %s owns: ignored", a.Site, a.Prefix, a.Network, n.owners[i].Site))
			continue
		}
		n.owners = append(n.owners, a)
	}
	for _, n := range r.nets {
		slices.SortFunc(n.owners, func(a, b Announcement) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	}
	return r
}

// CIDR is network's CIDR, if some reachable site announces the network.
func (r *Routes) CIDR(network string) (netip.Prefix, bool) {
	n := r.nets[network]
	if n == nil {
		return netip.Prefix{}, false
	}
	return n.cidr, true
}

// Owner is the site that owns dst's prefix of network.
func (r *Routes) Owner(network string, dst netip.Addr) (siteid.ID, bool) {
	n := r.nets[network]
	if n == nil {
		return siteid.ID{}, false
	}
	i, found := slices.BinarySearchFunc(n.owners, dst, func(o Announcement, a netip.Addr) int { return o.Prefix.Addr().Compare(a) })
	if !found {
		i-- // the last prefix starting before dst
	}
	if i < 0 || !n.owners[i].Prefix.Contains(dst) {
		return siteid.ID{}, false
	}
	return n.owners[i].Site, true
}

// Prefix is the prefix of network that site owns, as the table has it.
func (r *Routes) Prefix(network string, site siteid.ID) (netip.Prefix, bool) {
	n := r.nets[network]
	if n == nil {
		return netip.Prefix{}, false
	}
	for _, o := range n.owners {
		if o.Site == site {
			return o.Prefix, true
		}
	}
	return netip.Prefix{}, false
}

// Taken are the prefixes of network that sites other than self own.
func (r *Routes) Taken(network string, self siteid.ID) []netip.Prefix {
	var out []netip.Prefix
	if n := r.nets[network]; n != nil {
		for _, o := range n.owners {
			if o.Site != self {
				out = append(out, o.Prefix)
			}
		}
	}
	return out
}

// Networks are the names of every network announced, sorted.
func (r *Routes) Networks() []string {
	out := make([]string, 0, len(r.nets))
	for name := range r.nets {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Host is the address of the attachment whose fully qualified name
// (<attachment>.<network>.weft.) is fqdn, lower case.
func (r *Routes) Host(fqdn string) (netip.Addr, bool) {
	a, ok := r.hosts[fqdn]
	return a, ok
}
