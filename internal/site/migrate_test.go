package site

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/siteid"
)

// legacyDir writes a data directory as sites wrote them before identity
// keys: a random site ID, a CA naming it, no identity.key.
func legacyDir(t *testing.T, name string) (dir string, id siteid.ID, ca *identity.CA) {
	t.Helper()
	dir = t.TempDir()
	id, err := siteid.New()
	if err != nil {
		t.Fatal(err)
	}
	if ca, err = identity.NewCA(id, name, time.Now()); err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := ca.KeyPEM()
	must(t, os.WriteFile(filepath.Join(dir, caKeyFile), keyPEM, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, caCertFile), ca.CertPEM(), 0o644))
	writeState(t, dir, &state{ID: id.String(), Name: name, Tokens: &identity.TokenStore{}})
	return dir, id, ca
}

func writeState(t *testing.T, dir string, st *state) {
	t.Helper()
	b, err := json.Marshal(st)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, stateFile), b, 0o600))
}

func readState(t *testing.T, dir string) *state {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	must(t, err)
	st := &state{}
	must(t, json.Unmarshal(b, st))
	return st
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Two sites made before identity keys, linked then (a dials b with a
// certificate b's CA issued for a's old ID, and pins b's old ID and CA
// certificate), are started by this version: each moves to the ID its new
// key derives, says so in its log, and the link they had comes up with
// routes under the new IDs, without a new token. A restart keeps the new
// ID.
func TestLegacyDataDirectoriesMoveToKeyDerivedIDs(t *testing.T) {
	dirA, oldA, _ := legacyDir(t, "a")
	dirB, oldB, caB := legacyDir(t, "b")
	keyPEM, csr, err := identity.NewKey()
	must(t, err)
	certPEM, serial, err := caB.SignClient(time.Now(), csr, oldA, "a", time.Hour)
	must(t, err)
	stB := readState(t, dirB)
	stB.Inbound = []inboundLink{{Name: "a", PeerID: oldA.String(), PeerName: "a", Serial: serial, Created: time.Now()}}
	writeState(t, dirB, stB)

	b := startSiteIn(t, "b", dirB)
	stA := readState(t, dirA)
	stA.Outbound = []outboundLink{{Name: "b", Cost: 1, IssuerID: oldB.String(), IssuerName: "b", Addresses: []string{b.LinkAddr().String()},
		CAPEM: string(caB.CertPEM()), CertPEM: string(certPEM), KeyPEM: string(keyPEM)}}
	writeState(t, dirA, stA)
	a := startSiteIn(t, "a", dirA)

	for _, s := range []*testSite{a, b} {
		k, err := os.ReadFile(filepath.Join(s.dir, siteKeyFile))
		must(t, err)
		sk, err := identity.ParseSiteKey(k)
		must(t, err)
		if s.ID() != sk.ID() || s.ID() == oldA || s.ID() == oldB {
			t.Fatalf("%s: ID %s, key derives %s", s.Name(), s.ID(), sk.ID())
		}
		if fi, _ := os.Stat(filepath.Join(s.dir, siteKeyFile)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: identity.key mode %v, want 0600", s.Name(), fi.Mode().Perm())
		}
		st := readState(t, s.dir)
		if st.ID != s.ID().String() || st.LegacyID == "" {
			t.Errorf("%s: state ID %s legacy %q", s.Name(), st.ID, st.LegacyID)
		}
		if !strings.Contains(s.log.String(), "site moved to the ID derived from its identity key") {
			t.Errorf("%s: the move is not logged", s.Name())
		}
	}
	if code, _ := b.putConnector("orders"); code >= 300 {
		t.Fatalf("connector: %d", code)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a:\n%s\nb:\n%s", a.log.String(), b.log.String())
		}
	})
	waitFor(t, "a to route to b's connector under b's new ID", func() bool {
		c := a.Table().Candidates("orders")
		return len(c) == 1 && c[0].Site == b.ID() && slices.Equal(c[0].Path, []siteid.ID{b.ID()})
	})
	waitFor(t, "b to see a under a's new ID", func() bool {
		_, ok := b.Table().Route(a.ID())
		return ok
	})
	if _, ok := b.Table().Route(oldA); ok {
		t.Error("b routes to a's old ID")
	}

	// The link's certificate names a's old ID: it is due for rotation,
	// which moves the link to the new IDs at both ends.
	if !a.rotationDue(*a.outbound("b"), time.Now()) {
		t.Fatal("a link certificate naming the old ID is not due for rotation")
	}
	a.rotateDue(time.Now())
	cert, err := identity.ParseCertPEM([]byte(a.outbound("b").CertPEM))
	must(t, err)
	if id, _ := identity.PeerSiteID(cert); id != a.ID() || a.outbound("b").IssuerID != b.ID().String() {
		t.Fatalf("after rotation the certificate names %s, the issuer is %s", id, a.outbound("b").IssuerID)
	}
	if b.state().Inbound[0].PeerID != a.ID().String() {
		t.Fatalf("b's link names %s", b.state().Inbound[0].PeerID)
	}
	if a.rotationDue(*a.outbound("b"), time.Now()) {
		t.Fatal("still due after rotation")
	}

	// A restart keeps the key, the ID and the links; nothing moves again.
	id := b.ID()
	b.stop()
	b2 := startSiteIn(t, "b", dirB)
	if b2.ID() != id {
		t.Fatalf("restart changed the ID from %s to %s", id, b2.ID())
	}
	if strings.Contains(b2.log.String(), "site moved") {
		t.Error("a restart moved the site again")
	}
	waitFor(t, "a to route to b again", func() bool {
		c := a.Table().Candidates("orders")
		return len(c) == 1 && c[0].Site == b2.ID()
	})
}

// A site whose identity key is gone must not make a new one: that would
// silently make it another site.
func TestMissingIdentityKeyIsAnError(t *testing.T) {
	dir := t.TempDir()
	s := startSiteIn(t, "a", dir)
	s.stop()
	must(t, os.Remove(filepath.Join(dir, siteKeyFile)))
	_, err := New(Options{Name: "a", DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "restore it from a backup") {
		t.Fatalf("New without identity.key: %v", err)
	}
}
