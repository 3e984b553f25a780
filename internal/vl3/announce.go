package vl3

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"weft.dev/weft/internal/siteid"
)

// AddressPrefix starts every connector address that announces a network.
const AddressPrefix = "vl3/"

// nameRE is what a network's or an attachment's name must match: a DNS
// label, so that <attachment>.<network>.weft is a name.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckName reports whether name can name a network or an attachment.
func CheckName(what, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %s name %q: lower-case letters, digits and '-', at most 63, as a DNS label", ErrInvalid, what, name)
	}
	return nil
}

// Announcement is what a site says about one network in its record: the
// network's CIDR, and the prefix of it the site owns (invalid when it
// owns none yet: a site that defines a network announces it before any
// attachment).
type Announcement struct {
	Site    siteid.ID
	Network string
	CIDR    netip.Prefix
	Prefix  netip.Prefix
}

// NetworkAddress is the connector address that announces network: the
// address the address policy names when a network is exported to or
// imported from another organisation.
func NetworkAddress(network string) string { return AddressPrefix + network }

// Connector is a's connector in the record, as address, protocol and
// capacity: the protocol field carries the CIDR (at most 16 bytes for the
// /8 to /24 networks allowed, the field's limit), the capacity field the owned prefix's first address (0: none; no allowed
// network contains 0.0.0.0's prefix, see CheckCIDR). So the record format
// is unchanged.
func (a Announcement) Connector() (address, protocol string, capacity uint32) {
	if a.Prefix.IsValid() {
		capacity = binary.BigEndian.Uint32(a.Prefix.Addr().AsSlice())
	}
	return NetworkAddress(a.Network), a.CIDR.String(), capacity
}

// ParseAnnouncement reads a connector of site's record; ok is false for a
// connector that is not about a network. A network connector that does
// not parse is an error: the site that signed it runs a broken or hostile
// weft.
func ParseAnnouncement(site siteid.ID, address, protocol string, capacity uint32) (a Announcement, ok bool, err error) {
	name, found := strings.CutPrefix(address, AddressPrefix)
	if !found || strings.Contains(name, "/") { // a Host
		return a, false, nil
	}
	if err := CheckName("network", name); err != nil {
		return a, true, err
	}
	cidr, err := netip.ParsePrefix(protocol)
	if err != nil {
		return a, true, fmt.Errorf("%w: network %s: CIDR %q: %v", ErrInvalid, name, protocol, err)
	}
	if err := CheckCIDR(cidr); err != nil {
		return a, true, err
	}
	a = Announcement{Site: site, Network: name, CIDR: cidr}
	if capacity != 0 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], capacity)
		p := netip.PrefixFrom(netip.AddrFrom4(b), SitePrefixBits(cidr))
		if p.Masked() != p || !cidr.Contains(p.Addr()) {
			return a, true, fmt.Errorf("%w: network %s: prefix %s is not a site prefix of %s", ErrInvalid, name, p, cidr)
		}
		a.Prefix = p
	}
	return a, true, nil
}

// NetworkName is the network a stream's address names.
func NetworkName(address string) (string, bool) {
	name, ok := strings.CutPrefix(address, AddressPrefix)
	return name, ok && CheckName("network", name) == nil
}

// Host is an attachment's name as its site announces it, for DNS: a
// connector of address vl3/<network>/<name> whose protocol field is the
// attachment's address.
type Host struct {
	Network, Name string
	IP            netip.Addr
}

// Connector is h's connector address and protocol.
func (h Host) Connector() (address, protocol string) {
	return NetworkAddress(h.Network) + "/" + h.Name, h.IP.String()
}

// ParseHost reads a connector announcing an attachment's name; ok is false
// for a connector that is not one.
func ParseHost(address, protocol string) (h Host, ok bool, err error) {
	rest, found := strings.CutPrefix(address, AddressPrefix)
	network, name, isHost := strings.Cut(rest, "/")
	if !found || !isHost {
		return h, false, nil
	}
	if err := CheckName("network", network); err != nil {
		return h, true, err
	}
	if err := CheckName("attachment", name); err != nil {
		return h, true, err
	}
	ip, err := netip.ParseAddr(protocol)
	if err != nil || !ip.Is4() {
		return h, true, fmt.Errorf("%w: attachment %s.%s: address %q", ErrInvalid, name, network, protocol)
	}
	return Host{Network: network, Name: name, IP: ip}, true, nil
}
