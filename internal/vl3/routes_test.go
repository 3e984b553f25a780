package vl3

import (
	"net/netip"
	"testing"
)

func ann(site byte, network, cidr, prefix string) Announcement {
	a := Announcement{Site: id(site), Network: network, CIDR: netip.MustParsePrefix(cidr)}
	if prefix != "" {
		a.Prefix = netip.MustParsePrefix(prefix)
	}
	return a
}

func TestRoutes(t *testing.T) {
	r := BuildRoutes([]Announcement{
		ann(1, "blue", "100.100.0.0/16", "100.100.1.0/24"),
		ann(2, "blue", "100.100.0.0/16", "100.100.9.0/24"),
		ann(3, "blue", "100.100.0.0/16", ""),
		ann(2, "red", "100.100.0.0/16", "100.100.1.0/24"),  // same CIDR, another network
		ann(4, "blue", "100.101.0.0/16", "100.101.0.0/24"), // disagrees on the CIDR
		ann(5, "blue", "100.100.0.0/16", "100.100.9.0/24"), // claims site 2's prefix
	}, []Host{{Network: "blue", Name: "app", IP: netip.MustParseAddr("100.100.1.7")}, {Network: "blue", Name: "app", IP: netip.MustParseAddr("100.100.9.7")}})
	for _, c := range []struct {
		network, dst string
		site         byte
		ok           bool
	}{
		{"blue", "100.100.1.7", 1, true}, {"blue", "100.100.9.254", 2, true},
		{"red", "100.100.1.7", 2, true}, {"blue", "100.100.5.1", 0, false},
		{"blue", "100.100.0.1", 0, false}, {"green", "100.100.1.7", 0, false},
		{"blue", "100.101.0.1", 0, false},
	} {
		s, ok := r.Owner(c.network, netip.MustParseAddr(c.dst))
		if ok != c.ok || ok && s != id(c.site) {
			t.Errorf("Owner(%s, %s) = %v %v, want site %d %v", c.network, c.dst, s, ok, c.site, c.ok)
		}
	}
	if len(r.Conflicts) != 3 {
		t.Errorf("conflicts %q, want 3", r.Conflicts)
	}
	if a, ok := r.Host("app.blue.weft."); !ok || a.String() != "100.100.1.7" {
		t.Errorf("Host(app.blue.weft.) = %v %v, want the first one's address", a, ok)
	}
	if _, ok := r.Host("app.red.weft."); ok {
		t.Errorf("app.red.weft. resolves")
	}
	if got := r.Taken("blue", id(1)); len(got) != 1 || got[0].String() != "100.100.9.0/24" {
		t.Errorf("Taken = %v", got)
	}
	if p, ok := r.Prefix("red", id(2)); !ok || p.String() != "100.100.1.0/24" {
		t.Errorf("Prefix(red, 2) = %v %v", p, ok)
	}
	if n := r.Networks(); len(n) != 2 || n[0] != "blue" {
		t.Errorf("Networks = %v", n)
	}
}

func TestAnnouncementRoundTrip(t *testing.T) {
	for _, a := range []Announcement{
		ann(1, "blue", "100.100.0.0/16", "100.100.1.0/24"),
		ann(1, "blue", "100.100.0.0/16", ""),
		ann(1, "x-2", "255.255.255.0/24", "255.255.255.240/28"),
	} {
		addr, proto, capacity := a.Connector()
		if len(proto) > 16 {
			t.Fatalf("protocol %q over the record's 16 bytes", proto)
		}
		got, ok, err := ParseAnnouncement(a.Site, addr, proto, capacity)
		if err != nil || !ok || got != a {
			t.Fatalf("round trip of %+v: %+v %v %v", a, got, ok, err)
		}
	}
	for _, h := range []Host{{"blue", "app-1", netip.MustParseAddr("100.100.1.7")}} {
		addr, proto := h.Connector()
		if got, ok, err := ParseHost(addr, proto); !ok || err != nil || got != h {
			t.Fatalf("host round trip of %+v: %+v %v %v", h, got, ok, err)
		}
		if _, ok, _ := ParseAnnouncement(id(1), addr, proto, 0); ok {
			t.Fatalf("host %s parsed as a network", addr)
		}
	}
	for _, bad := range [][2]string{{"vl3/blue/App", "100.100.1.7"}, {"vl3/blue/app", "fd00::1"}, {"vl3/b_lue/app", "100.100.1.7"}} {
		if _, ok, err := ParseHost(bad[0], bad[1]); !ok || err == nil {
			t.Errorf("ParseHost(%q, %q): %v %v, want an error", bad[0], bad[1], ok, err)
		}
	}
	if _, ok, err := ParseAnnouncement(id(1), "orders", "tcp", 3); ok || err != nil {
		t.Fatalf("a service connector: %v %v", ok, err)
	}
	for _, bad := range []struct {
		addr, proto string
		capacity    uint32
	}{
		{"vl3/Blue", "100.100.0.0/16", 0}, {"vl3/blue", "tcp", 0},
		{"vl3/blue", "100.100.0.0/16", 0x64650100}, // 100.101.1.0: outside
		{"vl3/blue", "100.100.0.0/16", 0x64640101}, // 100.100.1.1: not a prefix start
	} {
		if _, ok, err := ParseAnnouncement(id(1), bad.addr, bad.proto, bad.capacity); !ok || err == nil {
			t.Errorf("ParseAnnouncement(%q, %q, %x) = %v %v, want an error", bad.addr, bad.proto, bad.capacity, ok, err)
		}
	}
}

func FuzzParseAnnouncement(f *testing.F) {
	f.Add("vl3/blue", "100.100.0.0/16", uint32(0x64640100))
	f.Add("vl3/x", "10.0.0.0/8", uint32(0))
	f.Add("vl3/blue/app", "100.100.1.7", uint32(0))
	f.Fuzz(func(t *testing.T, addr, proto string, capacity uint32) {
		if h, ok, err := ParseHost(addr, proto); ok && err == nil {
			ad, pr := h.Connector()
			if g, _, err := ParseHost(ad, pr); err != nil || g != h {
				t.Fatalf("host %+v re-parsed as %+v, %v", h, g, err)
			}
		}
		a, ok, err := ParseAnnouncement(id(1), addr, proto, capacity)
		if !ok || err != nil {
			return
		}
		// What parses announces again as itself, and routes.
		ad, pr, ca := a.Connector()
		if b, _, err := ParseAnnouncement(id(1), ad, pr, ca); err != nil || b != a {
			t.Fatalf("%+v re-parsed as %+v, %v", a, b, err)
		}
		if a.Prefix.IsValid() {
			if s, ok := BuildRoutes([]Announcement{a}, nil).Owner(a.Network, a.Prefix.Addr()); !ok || s != id(1) {
				t.Fatalf("no route into %+v", a)
			}
		}
	})
}
