package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// org makes an organisation key with the CLI and returns its file and ID.
func org(t *testing.T, s *site, name string) (keyFile, id string) {
	t.Helper()
	keyFile = filepath.Join(t.TempDir(), name+".key")
	out, err := s.try("org", "create", name)
	if err != nil {
		t.Fatalf("org create: %v\n%s", err, out)
	}
	// stdout (the key) comes before stderr (the ID note).
	key, _, _ := strings.Cut(out, "organisation "+name+":")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile, strings.TrimSpace(s.weft("org", "id", "--org-key", keyFile))
}

// join certifies s with the organisation key and installs the certificate.
func (s *site) join(keyFile, orgID string) {
	s.t.Helper()
	var v struct{ Site string }
	if err := json.Unmarshal([]byte(s.weft("org", "show", "-o", "json")), &v); err != nil {
		s.t.Fatal(err)
	}
	cert := filepath.Join(s.t.TempDir(), s.name+".cert")
	out := s.weft("org", "certify", "--org-key", keyFile, "--site", v.Site)
	if err := os.WriteFile(cert, []byte(out), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if out := s.weft("org", "install", cert); !strings.Contains(out, orgID) {
		s.t.Fatalf("org install at %s: %s", s.name, out)
	}
}

// greetings connects n times through listener addr and returns the
// distinct greetings (instance names) it got, and how many attempts got none.
func greetings(addr string, n int) (got []string, failed int) {
	for range n {
		g, err := greeting(addr)
		if err != nil {
			failed++
			continue
		}
		if !slices.Contains(got, g) {
			got = append(got, g)
		}
	}
	slices.Sort(got)
	return got, failed
}

// TestPolicyTwoOrganisations: organisations X (sites x1, x2) and Y (y1, y2)
// on the line x1 -50- x2 -1- y1 -1- y2, and z, in no organisation, linked
// to x2. y2 also serves X's address orders, and is far cheaper for x2 than
// x1: before organisations x2's clients go there; once the sites are
// certified, Y's connector for orders gets no traffic from X, which never
// delegated it. x1 exports inventory to Y, and y1 and y2 import it: Y's
// sites reach it, z does not.
func TestPolicyTwoOrganisations(t *testing.T) {
	x1, x2, y1, y2, z := startSite(t, "x1"), startSite(t, "x2"), startSite(t, "y1"), startSite(t, "y2"), startSite(t, "z")
	x2.linkTo(x1, "--cost", "50")
	x2.linkTo(y1, "--cost", "1")
	y2.linkTo(y1, "--cost", "1")
	z.linkTo(x2, "--cost", "1")
	x1.weft("connector", "create", "orders", "--target", echoServer(t, "x1"))
	y2.weft("connector", "create", "orders", "--target", echoServer(t, "y2"))
	x1.weft("connector", "create", "inventory", "--target", echoServer(t, "x1-inventory"))
	orders := x2.listen("orders")
	waitFor(t, 20*time.Second, "x2 to see orders at x1 and y2", func() bool { return len(x2.status().servedAt("orders")) == 2 })
	// Without organisations, as before: the cheapest connector wins.
	if got, _ := greetings(orders, 5); !slices.Equal(got, []string{"y2"}) {
		t.Fatalf("before organisations, x2's clients of orders reached %q, want y2 (the cheapest)", got)
	}

	xKey, xID := org(t, x1, "x")
	yKey, yID := org(t, x1, "y")
	x1.join(xKey, xID)
	x2.join(xKey, xID)
	y1.join(yKey, yID)
	y2.join(yKey, yID)
	x1.weft("policy", "export", "inventory", "--to", yID)
	y1.weft("policy", "import", "inventory", "--from", xID)
	y2.weft("policy", "import", "inventory", "--from", xID)

	waitFor(t, 20*time.Second, "x2 to drop y2's undelegated connector for orders", func() bool {
		return slices.Equal(x2.status().servedAt("orders"), []string{"x1"})
	})
	if got, failed := greetings(orders, 10); !slices.Equal(got, []string{"x1"}) || failed > 0 {
		t.Errorf("x2's clients of orders reached %q (%d failed), want only x1", got, failed)
	}
	for _, s := range []*site{y1, y2} {
		waitFor(t, 20*time.Second, s.name+" to see the inventory X exported", func() bool {
			return slices.Equal(s.status().servedAt("inventory"), []string{"x1"})
		})
		if got, failed := greetings(s.listen("inventory"), 3); !slices.Equal(got, []string{"x1-inventory"}) || failed > 0 {
			t.Errorf("%s's clients of inventory reached %q (%d failed)", s.name, got, failed)
		}
	}
	// z is in no organisation: nothing is exported to it.
	waitFor(t, 20*time.Second, "z to see x1's policy", func() bool { return len(z.status().servedAt("orders")) == 0 })
	if served := z.status().servedAt("inventory"); len(served) != 0 {
		t.Errorf("z sees inventory at %q", served)
	}
	if got, _ := greetings(z.listen("inventory"), 3); len(got) != 0 {
		t.Errorf("z's clients of inventory reached %q", got)
	}
	// y1 sees Y's own orders (one organisation is open), never x1's.
	if served := y1.status().servedAt("orders"); !slices.Equal(served, []string{"y2"}) {
		t.Errorf("y1 sees orders at %q, want only y2", served)
	}
	if out := x1.weft("policy", "list"); !strings.Contains(out, "export") || !strings.Contains(out, yID) {
		t.Errorf("policy list at x1:\n%s", out)
	}
}

// TestOrganisationRevokesASite: on the line a - b - c of one organisation,
// the organisation revokes c with `weft org revoke`; handed to a with
// `weft revocation add`, the statement floods to b, and c and its
// connector vanish from both sites' tables.
func TestOrganisationRevokesASite(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(b)
	c.linkTo(b)
	c.weft("connector", "create", "orders", "--target", echoServer(t, "c"))
	xKey, xID := org(t, a, "x")
	for _, s := range []*site{a, b, c} {
		s.join(xKey, xID)
	}
	waitFor(t, 20*time.Second, "a to see orders at c", func() bool { return slices.Equal(a.status().servedAt("orders"), []string{"c"}) })

	stmt := filepath.Join(t.TempDir(), "c.revoked")
	if err := os.WriteFile(stmt, []byte(a.weft("org", "revoke", "--org-key", xKey, "--site", c.status().Site.ID, "--reason", "retired")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := a.weft("revocation", "add", stmt); !strings.Contains(out, c.status().Site.ID) {
		t.Errorf("revocation add: %s", out)
	}
	for _, s := range []*site{a, b} {
		waitFor(t, 20*time.Second, "c to vanish at "+s.name, func() bool {
			st := s.status()
			return len(st.servedAt("orders")) == 0 && !st.hasSite("c")
		})
	}
	if out := b.weft("revocation", "list"); !strings.Contains(out, "organisation") || !strings.Contains(out, "retired") {
		t.Errorf("revocation list at b:\n%s", out)
	}
}
