package dns

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"weft.dev/weft/test/envtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	zone   = "example.test."
	key    = "weft-test."
	secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
)

// lookup asks the server for name/type and returns the answers' data, sorted.
func lookup(t *testing.T, addr, name string, typ uint16) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, typ)
	r, _, err := new(dns.Client).Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == typ {
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	slices.Sort(out)
	return out
}

func serial(t *testing.T, addr string) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeSOA)
	r, _, err := new(dns.Client).Exchange(m, addr)
	if err != nil || len(r.Answer) == 0 {
		t.Fatalf("SOA: %v %v", r, err)
	}
	return r.Answer[0].(*dns.SOA).Serial
}

func newClient(t *testing.T, addr, owner string) *Client {
	t.Helper()
	c, err := New(Config{Server: addr, Zone: "example.test", KeyName: key, Secret: secret, Owner: owner, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAgainstBIND(t *testing.T) {
	addr := envtest.StartBIND(t, zone, key, secret)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newClient(t, addr, "p1/dns/web")
	r1 := Resource{Namespace: "shop", Name: "web"}

	// A record set someone made by hand.
	manual, _ := dns.NewRR("manual.example.test. 60 IN A 192.0.2.99")
	u := new(dns.Msg)
	u.SetUpdate(zone)
	u.Insert([]dns.RR{manual})
	if err := c.send(ctx, u); err != nil {
		t.Fatal(err)
	}

	eps := []Endpoint{
		{DNSName: "www.example.test", RecordType: "A", Targets: []string{"192.0.2.1", "192.0.2.2"}, TTL: 30},
		{DNSName: "www.example.test", RecordType: "AAAA", Targets: []string{"2001:db8::1"}},
		{DNSName: "alias.example.test", RecordType: "CNAME", Targets: []string{"www.example.test"}},
		{DNSName: "info.example.test", RecordType: "TXT", Targets: []string{"v=weft"}},
	}
	if err := c.Apply(ctx, r1, eps); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		typ  uint16
		want string
	}{
		{"www.example.test.", dns.TypeA, "[192.0.2.1 192.0.2.2]"},
		{"www.example.test.", dns.TypeAAAA, "[2001:db8::1]"},
		{"alias.example.test.", dns.TypeCNAME, "[www.example.test.]"},
		{"info.example.test.", dns.TypeTXT, `["v=weft"]`},
		{"weft-a.www.example.test.", dns.TypeTXT, `["heritage=weft,weft/owner=p1/dns/web,weft/resource=shop/web"]`},
	} {
		if got := fmt.Sprint(lookup(t, addr, tc.name, tc.typ)); got != tc.want {
			t.Errorf("%s %s = %s, want %s", tc.name, dns.TypeToString[tc.typ], got, tc.want)
		}
	}

	// Applying the same state again changes nothing in the zone.
	before := serial(t, addr)
	if err := c.Apply(ctx, r1, eps); err != nil {
		t.Fatal(err)
	}
	if after := serial(t, addr); after != before {
		t.Errorf("idempotent apply bumped the serial %d -> %d", before, after)
	}

	// Record sets not owned by this resource are refused, not overwritten.
	err := c.Apply(ctx, r1, append(eps, Endpoint{DNSName: "manual.example.test", RecordType: "A", Targets: []string{"192.0.2.3"}}))
	if !errors.Is(err, ErrNotOwned) {
		t.Errorf("taking over a hand-made record: err = %v, want ErrNotOwned", err)
	}
	other := newClient(t, addr, "p1/dns/other")
	err = other.Apply(ctx, Resource{Namespace: "shop", Name: "web"}, eps[:1])
	if !errors.Is(err, ErrNotOwned) {
		t.Errorf("another owner taking over: err = %v, want ErrNotOwned", err)
	}
	if got, err := other.Owned(ctx); err != nil || len(got) != 0 {
		t.Errorf("other owner owns %v, %v", got, err)
	}
	if got, err := c.Owned(ctx); err != nil || fmt.Sprint(got) != "[shop/web]" {
		t.Errorf("Owned = %v, %v", got, err)
	}

	// A changed target is replaced; dropped endpoints disappear.
	if err := c.Apply(ctx, r1, []Endpoint{{DNSName: "www.example.test", RecordType: "A", Targets: []string{"192.0.2.7"}, TTL: 30}}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(lookup(t, addr, "www.example.test.", dns.TypeA)); got != "[192.0.2.7]" {
		t.Errorf("www A after change = %s", got)
	}
	for _, gone := range []struct {
		name string
		typ  uint16
	}{{"alias.example.test.", dns.TypeCNAME}, {"www.example.test.", dns.TypeAAAA}, {"info.example.test.", dns.TypeTXT}, {"weft-cname.alias.example.test.", dns.TypeTXT}} {
		if got := lookup(t, addr, gone.name, gone.typ); len(got) != 0 {
			t.Errorf("%s %s still present: %v", gone.name, dns.TypeToString[gone.typ], got)
		}
	}

	// Delete removes everything r1 owns and nothing else.
	if err := c.Delete(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, addr, "www.example.test.", dns.TypeA); len(got) != 0 {
		t.Errorf("www A after delete: %v", got)
	}
	if got := lookup(t, addr, "weft-a.www.example.test.", dns.TypeTXT); len(got) != 0 {
		t.Errorf("ownership record after delete: %v", got)
	}
	if got := fmt.Sprint(lookup(t, addr, "manual.example.test.", dns.TypeA)); got != "[192.0.2.99]" {
		t.Errorf("hand-made record after delete: %s", got)
	}
	if got, err := c.Owned(ctx); err != nil || len(got) != 0 {
		t.Errorf("Owned after delete = %v, %v", got, err)
	}

	// A wrong key is refused by the server.
	bad, _ := New(Config{Server: addr, Zone: zone, KeyName: key, Secret: "d3Jvbmctd3Jvbmctd3Jvbmc="})
	if err := bad.Apply(ctx, r1, eps[:1]); err == nil {
		t.Error("apply with a wrong TSIG secret succeeded")
	}
}

func TestEndpointValidation(t *testing.T) {
	c, err := New(Config{Server: "127.0.0.1:53", Zone: zone, KeyName: key, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []Endpoint{
		{DNSName: "www.other.test", RecordType: "A", Targets: []string{"192.0.2.1"}},
		{DNSName: "www.example.test", RecordType: "MX", Targets: []string{"mail"}},
		{DNSName: "www.example.test", RecordType: "A", Targets: []string{"2001:db8::1"}},
		{DNSName: "www.example.test", RecordType: "AAAA", Targets: []string{"192.0.2.1"}},
		{DNSName: "www.example.test", RecordType: "A"},
		{DNSName: "www.example.test", RecordType: "CNAME", Targets: []string{"a.test", "b.test"}},
		{DNSName: "weft-a.www.example.test", RecordType: "TXT", Targets: []string{"x"}},
		{DNSName: "", RecordType: "A", Targets: []string{"192.0.2.1"}},
	} {
		if _, _, err := c.records(ep); !errors.Is(err, ErrInvalidEndpoint) {
			t.Errorf("%+v: err = %v, want ErrInvalidEndpoint", ep, err)
		}
	}
	if _, rrs, err := c.records(Endpoint{DNSName: "WWW.Example.Test.", RecordType: "A", Targets: []string{"192.0.2.1"}}); err != nil || rrs[0].Header().Ttl != 300 {
		t.Errorf("valid endpoint: %v %v", rrs, err)
	}
}

func TestParseOwnership(t *testing.T) {
	o := Ownership{Owner: "p1/dns/web", Resource: Resource{Namespace: "shop", Name: "web"}}
	if got, err := ParseOwnership(o.String()); err != nil || got != o {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{
		"", "heritage=weft", "heritage=external-dns,weft/owner=x,weft/resource=a/b",
		"heritage=weft,weft/owner=x,weft/owner=y", "heritage=weft,weft/owner=x,weft/resource=ab",
		"heritage=weft,weft/owner=x,weft/resource=a/b/c", "heritage=weft,weft/owner=,weft/resource=a/b",
		"heritage=weft,weft/owner=x,weft/resource=a/b,extra=1", `heritage=weft,weft/owner="x",weft/resource=a/b`,
	} {
		if _, err := ParseOwnership(bad); !errors.Is(err, ErrBadOwnership) {
			t.Errorf("ParseOwnership(%q) err = %v", bad, err)
		}
	}
}

// FuzzParseOwnership: TXT text from the zone is untrusted. Whatever parses
// must print back to the same record, so ownership can never be widened by
// an odd encoding.
func FuzzParseOwnership(f *testing.F) {
	f.Add("heritage=weft,weft/owner=p1/dns/web,weft/resource=shop/web")
	f.Add("heritage=weft,weft/resource=/x,weft/owner=o")
	f.Add("heritage=weft,,")
	f.Fuzz(func(t *testing.T, txt string) {
		o, err := ParseOwnership(txt)
		if err != nil {
			return
		}
		again, err := ParseOwnership(o.String())
		if err != nil || again != o {
			t.Fatalf("%q parsed to %+v, which re-parses to %+v, %v", txt, o, again, err)
		}
	})
}
