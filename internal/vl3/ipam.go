package vl3

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"weft.dev/weft/internal/siteid"
)

// Bounds of a network's CIDR. A site's prefix is 8 bits longer than the
// network's, at most a /28: room for 256 sites, each with at least 13
// attachments. Only IPv4 is carried for now.
const (
	MinNetworkBits = 8
	MaxNetworkBits = 24
	siteBits       = 8
	maxSitePrefix  = 28
)

// ErrInvalid is returned (wrapped, with the reason) for a network, prefix or
// address that breaks a rule of this package.
var ErrInvalid = errors.New("vl3: invalid")

// ErrExhausted is returned when no prefix or address is left.
var ErrExhausted = errors.New("vl3: exhausted")

// CheckCIDR reports whether p can be a network's CIDR.
func CheckCIDR(p netip.Prefix) error {
	switch {
	case !p.IsValid() || !p.Addr().Is4():
		return fmt.Errorf("%w: CIDR %s: an IPv4 prefix such as 100.100.0.0/16 is needed", ErrInvalid, p)
	case p.Masked() != p:
		return fmt.Errorf("%w: CIDR %s has host bits set; did you mean %s?", ErrInvalid, p, p.Masked())
	case p.Addr().As4()[0] == 0:
		return fmt.Errorf("%w: CIDR %s: 0.0.0.0/8 is not a network's range", ErrInvalid, p)
	case p.Bits() < MinNetworkBits || p.Bits() > MaxNetworkBits:
		return fmt.Errorf("%w: CIDR %s: the prefix length must be /%d to /%d", ErrInvalid, p, MinNetworkBits, MaxNetworkBits)
	}
	return nil
}

// SitePrefixBits is the length of each site's prefix of network.
func SitePrefixBits(network netip.Prefix) int {
	return min(network.Bits()+siteBits, maxSitePrefix)
}

// ClaimPrefix is the prefix of network that site takes, given the prefixes
// other sites already announce (taken). The first choice is derived from
// the site ID, so that a site asks for the same prefix every time and two
// sites rarely want the same one; a taken choice moves on to the next free
// prefix. A claim made before another site's announcement arrived can still
// collide: [Routes] reports such a conflict, and the lower site ID keeps the
// prefix.
func ClaimPrefix(network netip.Prefix, site siteid.ID, taken []netip.Prefix) (netip.Prefix, error) {
	if err := CheckCIDR(network); err != nil {
		return netip.Prefix{}, err
	}
	bits := SitePrefixBits(network)
	n := uint32(1) << (bits - network.Bits())
	start := binary.BigEndian.Uint32(site[:4]) % n
	for i := range n {
		p := nthPrefix(network, bits, (start+i)%n)
		if !slices.ContainsFunc(taken, p.Overlaps) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: every /%d of %s is taken by another site", ErrExhausted, bits, network)
}

func nthPrefix(network netip.Prefix, bits int, i uint32) netip.Prefix {
	base := binary.BigEndian.Uint32(network.Addr().AsSlice())
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], base|i<<(32-bits))
	return netip.PrefixFrom(netip.AddrFrom4(a), bits)
}

// Pool hands out the addresses of a site's prefix: never the prefix's first
// (network) or last (broadcast) address, never one twice. It is a plain
// value so that its owner can persist it.
type Pool struct {
	Prefix netip.Prefix
	// Used are the addresses handed out and not released.
	Used []netip.Addr
}

// Allocate takes want if it is valid (in the prefix, not reserved, free),
// or, with want zero, the lowest free address.
func (p *Pool) Allocate(want netip.Addr) (netip.Addr, error) {
	first, last := p.bounds()
	if want.IsValid() {
		switch {
		case !p.Prefix.Contains(want):
			return netip.Addr{}, fmt.Errorf("%w: address %s is not in this site's prefix %s", ErrInvalid, want, p.Prefix)
		case want.Less(first) || last.Less(want):
			return netip.Addr{}, fmt.Errorf("%w: address %s is reserved in prefix %s; use %s to %s", ErrInvalid, want, p.Prefix, first, last)
		case slices.Contains(p.Used, want):
			return netip.Addr{}, fmt.Errorf("%w: address %s is already attached", ErrInvalid, want)
		}
		p.take(want)
		return want, nil
	}
	for a := first; !last.Less(a); a = a.Next() {
		if !slices.Contains(p.Used, a) {
			p.take(a)
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: every address of %s is attached; detach one first", ErrExhausted, p.Prefix)
}

func (p *Pool) take(a netip.Addr) {
	p.Used = append(p.Used, a)
	slices.SortFunc(p.Used, netip.Addr.Compare)
}

// Release returns a to the pool.
func (p *Pool) Release(a netip.Addr) {
	p.Used = slices.DeleteFunc(p.Used, func(u netip.Addr) bool { return u == a })
}

func (p *Pool) bounds() (first, last netip.Addr) {
	base := binary.BigEndian.Uint32(p.Prefix.Masked().Addr().AsSlice())
	size := uint32(1) << (32 - p.Prefix.Bits())
	var f, l [4]byte
	binary.BigEndian.PutUint32(f[:], base+1)
	binary.BigEndian.PutUint32(l[:], base+size-2)
	return netip.AddrFrom4(f), netip.AddrFrom4(l)
}
