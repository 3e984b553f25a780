package vl3

import (
	"errors"
	"net/netip"
	"testing"

	"weft.dev/weft/internal/siteid"
)

func id(b byte) siteid.ID { return siteid.ID{b, b, b, b, b} }

func TestCheckCIDR(t *testing.T) {
	for _, c := range []struct {
		cidr string
		ok   bool
	}{
		{"100.100.0.0/16", true}, {"100.64.0.0/10", true}, {"10.1.2.0/24", true},
		{"100.100.0.1/16", false}, {"100.100.0.0/25", false}, {"100.0.0.0/7", false},
		{"0.0.0.0/8", false}, {"fd00::/64", false},
	} {
		if err := CheckCIDR(netip.MustParsePrefix(c.cidr)); (err == nil) != c.ok {
			t.Errorf("CheckCIDR(%s) = %v, want ok %v", c.cidr, err, c.ok)
		}
	}
}

func TestClaimPrefixDeterministic(t *testing.T) {
	net := netip.MustParsePrefix("100.100.0.0/16")
	p1, err := ClaimPrefix(net, id(7), nil)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := ClaimPrefix(net, id(7), nil)
	if p1 != p2 || p1.Bits() != 24 || !net.Contains(p1.Addr()) {
		t.Fatalf("claims %s and %s: want the same /24 of %s", p1, p2, net)
	}
	// Taken: the next free one, wrapping around.
	p3, _ := ClaimPrefix(net, id(7), []netip.Prefix{p1})
	if p3 == p1 || p3.Overlaps(p1) {
		t.Fatalf("claim with %s taken gave %s", p1, p3)
	}
}

func TestClaimPrefixExhausted(t *testing.T) {
	net := netip.MustParsePrefix("100.100.0.0/24") // /28 site prefixes: 16 of them
	var taken []netip.Prefix
	for i := range 16 {
		p, err := ClaimPrefix(net, id(byte(i)), taken)
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		taken = append(taken, p)
	}
	if _, err := ClaimPrefix(net, id(99), taken); !errors.Is(err, ErrExhausted) {
		t.Fatalf("17th claim: %v, want ErrExhausted", err)
	}
}

func TestPool(t *testing.T) {
	p := Pool{Prefix: netip.MustParsePrefix("100.100.3.0/28")}
	a, err := p.Allocate(netip.Addr{})
	if err != nil || a != netip.MustParseAddr("100.100.3.1") {
		t.Fatalf("first = %v, %v", a, err)
	}
	if _, err := p.Allocate(netip.MustParseAddr("100.100.3.1")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("taken twice: %v", err)
	}
	for _, bad := range []string{"100.100.3.0", "100.100.3.15", "100.100.4.2"} {
		if _, err := p.Allocate(netip.MustParseAddr(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Allocate(%s) = %v, want ErrInvalid", bad, err)
		}
	}
	if b, _ := p.Allocate(netip.MustParseAddr("100.100.3.7")); b.String() != "100.100.3.7" {
		t.Fatalf("wanted .7, got %s", b)
	}
	for range 12 {
		if _, err := p.Allocate(netip.Addr{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Allocate(netip.Addr{}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("15th: %v", err)
	}
	p.Release(a)
	if b, _ := p.Allocate(netip.Addr{}); b != a {
		t.Fatalf("after release got %s, want %s", b, a)
	}
}
