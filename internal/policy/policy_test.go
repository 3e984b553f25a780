package policy

import (
	"crypto/ed25519"
	"errors"
	"reflect"
	"testing"

	"weft.dev/weft/internal/siteid"
)

func orgKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func orgOf(k ed25519.PrivateKey) OrgID { return OrgIDOf(k.Public().(ed25519.PublicKey)) }

var (
	x, y, z = orgOf(orgKey(1)), orgOf(orgKey(2)), orgOf(orgKey(3))
)

func rule(addr string, orgs ...OrgID) Rule { return Rule{Address: addr, Orgs: orgs} }

// TestAllowsService: within an organisation, and among unorganised sites,
// everything is open; across organisations an address flows only when the
// provider exports it to the consumer's organisation and the consumer
// imports it from the provider's.
func TestAllowsService(t *testing.T) {
	for _, tc := range []struct {
		name               string
		provider, consumer Member
		address            string
		ok                 bool
		reason             string
	}{
		{"one organisation", Member{Org: x}, Member{Org: x}, "orders", true, SameOrg},
		{"both unorganised", Member{}, Member{}, "orders", true, SameOrg},
		{"nothing exported", Member{Org: x}, Member{Org: y, Imports: []Rule{rule("orders", x)}}, "orders", false, NotExported},
		{"exported, not imported", Member{Org: x, Exports: []Rule{rule("orders", y)}}, Member{Org: y}, "orders", false, NotImported},
		{"exported and imported", Member{Org: x, Exports: []Rule{rule("orders", y)}}, Member{Org: y, Imports: []Rule{rule("orders", x)}}, "orders", true, Agreed},
		{"exported to another organisation", Member{Org: x, Exports: []Rule{rule("orders", z)}}, Member{Org: y, Imports: []Rule{rule("orders", x)}}, "orders", false, NotExported},
		{"imported from another organisation", Member{Org: x, Exports: []Rule{rule("orders", y)}}, Member{Org: y, Imports: []Rule{rule("orders", z)}}, "orders", false, NotImported},
		{"another address", Member{Org: x, Exports: []Rule{rule("orders", y)}}, Member{Org: y, Imports: []Rule{rule("orders", x)}}, "payments", false, NotExported},
		{"services match exactly", Member{Org: x, Exports: []Rule{rule("orders.>", y)}}, Member{Org: y, Imports: []Rule{rule("orders.>", x)}}, "orders.eu", false, NotExported},
		// A site of Y serving X's address to X: X did not import it from Y.
		{"undelegated hijack", Member{Org: y}, Member{Org: x, Imports: []Rule{rule("payments", z)}}, "orders", false, NotExported},
		{"unorganised consumer", Member{Org: x, Exports: []Rule{rule("orders", y)}}, Member{}, "orders", false, NotExported},
		{"unorganised provider", Member{}, Member{Org: y, Imports: []Rule{rule("orders", x)}}, "orders", false, NotExported},
		{"one of several organisations", Member{Org: x, Exports: []Rule{rule("orders", z, y)}}, Member{Org: y, Imports: []Rule{rule("orders", z, x)}}, "orders", true, Agreed},
	} {
		ok, reason := AllowsService(tc.provider, tc.consumer, tc.address)
		if ok != tc.ok || reason != tc.reason {
			t.Errorf("%s: %v %s, want %v %s", tc.name, ok, reason, tc.ok, tc.reason)
		}
	}
}

// TestAllowsEvents: an exported pattern covers the subscriptions inside it
// and no wider one.
func TestAllowsEvents(t *testing.T) {
	p := Member{Org: x, Exports: []Rule{rule("orders.>", y)}}
	c := Member{Org: y, Imports: []Rule{rule("orders.*", x)}}
	for _, tc := range []struct {
		pattern string
		ok      bool
		reason  string
	}{
		{"orders.created", true, Agreed},
		{"orders.*", true, Agreed},
		{"orders.>", false, NotImported}, // Y imports only orders.*
		{"orders.eu.created", false, NotImported},
		{">", false, NotExported},
		{"payments", false, NotExported},
	} {
		if ok, reason := AllowsEvents(p, c, tc.pattern); ok != tc.ok || reason != tc.reason {
			t.Errorf("%s: %v %s, want %v %s", tc.pattern, ok, reason, tc.ok, tc.reason)
		}
	}
}

func TestCert(t *testing.T) {
	site, other := siteid.ID{1}, siteid.ID{2}
	c := Certify(orgKey(1), site)
	if err := c.Verify(site); err != nil || c.Org() != x {
		t.Fatalf("Verify: %v, org %s", err, c.Org())
	}
	if err := c.Verify(other); !errors.Is(err, ErrBadCert) {
		t.Errorf("for another site: %v", err)
	}
	bad := c
	bad.Sig[0] ^= 1
	if err := bad.Verify(site); !errors.Is(err, ErrBadCert) {
		t.Errorf("tampered signature: %v", err)
	}
	// Another organisation's key in a copied certificate does not check.
	swapped := c
	copy(swapped.OrgKey[:], orgKey(2).Public().(ed25519.PublicKey))
	if err := swapped.Verify(site); !errors.Is(err, ErrBadCert) {
		t.Errorf("swapped key: %v", err)
	}
	got, err := ParseCertPEM(c.PEM())
	if err != nil || *got != c {
		t.Fatalf("PEM round trip: %v", err)
	}
	if _, err := ParseCertPEM([]byte("junk")); !errors.Is(err, ErrBadCert) {
		t.Errorf("junk: %v", err)
	}
	p := Policy{Cert: &bad}
	if m, err := p.Member(site); err == nil || !m.Org.IsZero() {
		t.Errorf("a site with a bad certificate is in %s (%v)", m.Org, err)
	}
}

func TestPolicyRoundTrip(t *testing.T) {
	c := Certify(orgKey(1), siteid.ID{1})
	for _, p := range []Policy{
		{},
		{Cert: &c},
		{Cert: &c, Exports: []Rule{rule("orders", y, z)}, Imports: []Rule{rule("payments.>", y)}},
		{Imports: []Rule{rule("a", x)}},
	} {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Policy
		if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(got, p) {
			t.Errorf("round trip of %+v: %+v, %v", p, got, err)
		}
	}
	for _, p := range []Policy{
		{Exports: []Rule{rule("orders")}},
		{Exports: []Rule{rule("", x)}},
		{Imports: []Rule{rule("orders", OrgID{})}},
		{Exports: make([]Rule, MaxRules+1)},
	} {
		if _, err := p.MarshalBinary(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", p, err)
		}
	}
}

func TestParseOrgID(t *testing.T) {
	if id, err := ParseOrgID(x.String()); err != nil || id != x {
		t.Errorf("%s: %s %v", x, id, err)
	}
	for _, s := range []string{"", "00000000000000000000000000000000", "zz", x.String() + "00"} {
		if _, err := ParseOrgID(s); !errors.Is(err, ErrBadOrgID) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// FuzzPolicy: any bytes decode to a valid policy that encodes back to the
// same bytes, or are refused with ErrInvalid.
func FuzzPolicy(f *testing.F) {
	c := Certify(orgKey(1), siteid.ID{1})
	for _, p := range []Policy{{}, {Cert: &c, Exports: []Rule{rule("orders", y)}, Imports: []Rule{rule("p.>", x, z)}}} {
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Policy
		if err := p.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		again, err := p.MarshalBinary()
		if err != nil || string(again) != string(b) {
			t.Fatalf("decoded %x does not encode back: %x %v", b, again, err)
		}
	})
}
