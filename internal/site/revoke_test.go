package site

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/revocation"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// On a line a - b - c, c revokes itself (its operator lost its key, say):
// the statement floods to a through b, c's connectors vanish at a, b closes
// its link to c and refuses it after, and a restarted a still refuses c.
func TestRevocationFloodsAndHolds(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	linkSites(t, a, b)
	linkSites(t, c, b)
	if code, _ := c.putConnector("orders"); code >= 300 {
		t.Fatalf("connector: %d", code)
	}
	waitFor(t, "a to see c's connector", func() bool { return len(a.Table().Candidates("orders")) == 1 })

	start := time.Now()
	view, err := c.Revoke("", "decommissioned")
	if err != nil {
		t.Fatal(err)
	}
	if view.Site != c.ID().String() || view.Kind != "site" || view.Reason != "decommissioned" {
		t.Fatalf("revocation view %+v", view)
	}
	waitFor(t, "c's connector to vanish at a", func() bool {
		_, routed := a.Table().Route(c.ID())
		return len(a.Table().Candidates("orders")) == 0 && !routed && a.isRevoked(c.ID())
	})
	t.Logf("revocation reached the far end in %v", time.Since(start))
	waitFor(t, "b to close its link to c", func() bool { return b.session(c.ID()) == nil })
	if _, err := c.Revoke("", "again"); err == nil {
		t.Error("a second revocation of the same site was accepted")
	}

	// c's dialer keeps trying; b refuses it at the hello, every time.
	waitFor(t, "b to refuse c's link", func() bool { return strings.Contains(b.log.String(), "link refused: the peer site is revoked") })
	if b.session(c.ID()) != nil {
		t.Fatal("b took c back")
	}

	// a keeps the statement across a restart.
	a.stop()
	a2 := startSiteIn(t, "a", a.dir)
	if !a2.isRevoked(c.ID()) || len(a2.Revocations()) != 1 {
		t.Fatal("a forgot the revocation on restart")
	}

	// The statement taken to a site outside the network works there too;
	// altered, it is refused.
	d := startSite(t, "d")
	raw, _ := base64.StdEncoding.DecodeString(view.Statement)
	var stmt revocation.Statement
	must(t, stmt.UnmarshalBinary(raw))
	stmt.Site = siteid.ID{1}
	bad, _ := stmt.MarshalBinary()
	if code, errCode := d.api("POST", "/v1/revocations", map[string]string{"statement": base64.StdEncoding.EncodeToString(bad)}, nil); code != 400 || errCode != "Invalid" {
		t.Errorf("altered statement: %d %s", code, errCode)
	}
	if code, _ := d.api("POST", "/v1/revocations", map[string]string{"statement": view.Statement}, nil); code != 200 {
		t.Fatalf("statement at d: %d", code)
	}
	if !d.isRevoked(c.ID()) {
		t.Fatal("d did not take the statement")
	}
}

// A site revokes itself only when told so in words: an empty body, which a
// script's mistake or an empty statement file sends, is refused and
// revokes nothing, and so is a body with both a statement and self.
func TestSelfRevocationMustBeSaid(t *testing.T) {
	a := startSite(t, "a")
	for _, body := range []any{map[string]any{}, map[string]any{"reason": "retired"},
		map[string]any{"self": true, "statement": "AAEC"}} {
		if code, errCode := a.api("POST", "/v1/revocations", body, nil); code != 400 || errCode != "Invalid" {
			t.Errorf("POST %v: %d %s, want 400 Invalid", body, code, errCode)
		}
	}
	if a.isRevoked(a.ID()) {
		t.Fatal("an unsaid self-revocation revoked the site")
	}
	var view apitype.Revocation
	if code, _ := a.api("POST", "/v1/revocations", map[string]any{"self": true, "reason": "retired"}, &view); code != 200 || view.Site != a.ID().String() {
		t.Fatalf("self: %d %+v", code, view)
	}
	if !a.isRevoked(a.ID()) {
		t.Fatal("self: true did not revoke the site")
	}
}

// A neighbour's statement that does not check is dropped and counted.
func TestForgedRevocationRefused(t *testing.T) {
	victim, honest, rogue := rogueSetup(t)
	waitFor(t, "victim to route to honest", func() bool { _, ok := victim.Table().Route(honest.ID()); return ok })
	// The rogue signs a revocation of honest with its own key.
	stmt, err := revocation.New(revocation.BySite, honest.ID(), rogue.key.Private(), time.Now().Unix(), "forged")
	must(t, err)
	b, _ := stmt.MarshalBinary()
	must(t, rogue.bestPeer(victim.ID()).sess.SendControl(append([]byte{ctlRevoke}, b...)))
	waitFor(t, "the forged revocation to be counted", func() bool { return victim.rejected(rejectRevocation) == 1 })
	if victim.isRevoked(honest.ID()) {
		t.Fatal("a forged revocation took effect")
	}
	if _, ok := victim.Table().Route(honest.ID()); !ok {
		t.Fatal("victim lost honest")
	}
}

// orgRevocation is the base64 statement by which o revokes site.
func orgRevocation(t *testing.T, o testOrg, site siteid.ID) string {
	stmt, err := revocation.New(revocation.ByOrganisation, site, o.key, time.Now().Unix(), "left the organisation")
	must(t, err)
	b, err := stmt.MarshalBinary()
	must(t, err)
	return base64.StdEncoding.EncodeToString(b)
}

// On a line a - b - c, the organisation that certified c revokes it: the
// statement, handed to a, floods to b, which closes its link to c, and c
// vanishes from both tables. Another organisation's statement, or one for
// a site the organisation did not certify, is refused.
func TestOrganisationRevokesItsSite(t *testing.T) {
	x, y := newTestOrg(t), newTestOrg(t)
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	linkSites(t, a, b)
	linkSites(t, c, b)
	c.join(x)
	waitFor(t, "a to know c's organisation", func() bool { return !(*a.pol.members.Load())[c.ID()].Org.IsZero() })

	for what, stmt := range map[string]string{
		"another organisation's statement":          orgRevocation(t, y, c.ID()),
		"a statement for a site it did not certify": orgRevocation(t, x, b.ID()),
	} {
		if code, errCode := a.api("POST", "/v1/revocations", map[string]string{"statement": stmt}, nil); code != 400 || errCode != "Invalid" {
			t.Errorf("%s: %d %s, want 400 Invalid", what, code, errCode)
		}
	}
	if a.isRevoked(c.ID()) || a.isRevoked(b.ID()) {
		t.Fatal("a refused statement took effect")
	}

	var view struct{ Kind, Site string }
	if code, errCode := a.api("POST", "/v1/revocations", map[string]string{"statement": orgRevocation(t, x, c.ID())}, &view); code != 200 || view.Kind != "organisation" || view.Site != c.ID().String() {
		t.Fatalf("the organisation's statement: %d %s %+v", code, errCode, view)
	}
	waitFor(t, "c to vanish from a's and b's tables and b to close its link to c", func() bool {
		_, atA := a.Table().Route(c.ID())
		_, atB := b.Table().Route(c.ID())
		return !atA && !atB && b.isRevoked(c.ID()) && b.session(c.ID()) == nil
	})
	if got := b.rejected(rejectRevocation); got != 0 {
		t.Errorf("b refused %v statements", got)
	}
}

// keyRevocation is the base64 statement by which s's identity key revokes
// its operational key op.
func keyRevocation(t *testing.T, s *testSite, op ed25519.PublicKey) string {
	stmt, err := revocation.NewKey(s.key.Private(), op, time.Now().Unix(), "stolen")
	must(t, err)
	b, err := stmt.MarshalBinary()
	must(t, err)
	return base64.StdEncoding.EncodeToString(b)
}

// On a line a - b - c, revoking an operational key of c takes what that
// key signed out of a's table at once, however new its number, and a's
// table fills again with c's record signed by a key that is not revoked.
// First an older key, stolen: its holder had a take a record of c that
// hijacks an address and is numbered far above c's own; then c's current
// key, which makes c rotate.
func TestOperationalKeyRevocationEmptiesTables(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	linkSites(t, a, b)
	linkSites(t, c, b)
	if code, _ := c.putConnector("orders"); code >= 300 {
		t.Fatalf("connector: %d", code)
	}
	signedBy := func(key ed25519.PublicKey) func() bool {
		return func() bool { rec, ok := a.record(c.ID()); return ok && bytes.Equal(rec.Key[:], key) }
	}
	stolen := c.op.Load()
	waitFor(t, "a to hold c's record", signedBy(stolen.Public()))
	if _, err := c.RotateKey(false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to hold c's record signed by its new key", signedBy(c.op.Load().Public()))
	rec, _ := a.record(c.ID())
	rec.Seq += 1 << 30
	rec.Connectors = []routing.Connector{{Address: "hijack", Protocol: "tcp", Capacity: 1}}
	rec.SignOp(stolen)
	b.sendRaw(a.ID(), rec)
	waitFor(t, "a to take the record made with the stolen key", func() bool { return len(a.Table().Candidates("hijack")) == 1 })

	revoke := func(op ed25519.PublicKey) {
		t.Helper()
		start := time.Now()
		if _, err := a.Revoke(keyRevocation(t, c, op), ""); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the revoked key's record to leave a's table", func() bool { return !signedBy(op)() })
		t.Logf("the record signed by the revoked key left a's table %v after the revocation", time.Since(start))
	}
	revoke(stolen.Public())
	if len(a.Table().Candidates("hijack")) != 0 {
		t.Fatal("a still routes the hijacked address to c")
	}
	waitFor(t, "a to take c's own record again", func() bool {
		rec, ok := a.record(c.ID())
		return ok && bytes.Equal(rec.Key[:], c.op.Load().Public()) && len(a.Table().Candidates("orders")) == 1
	})

	current := c.op.Load()
	revoke(current.Public())
	waitFor(t, "a to take c's record signed by the key c rotated to", func() bool {
		rec, ok := a.record(c.ID())
		return ok && !bytes.Equal(rec.Key[:], current.Public()) && bytes.Equal(rec.Key[:], c.op.Load().Public()) &&
			rec.Verify(time.Now()) == nil && len(a.Table().Candidates("orders")) == 1
	})
}
