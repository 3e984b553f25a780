package identity

import (
	"crypto/x509"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"weft.dev/weft/internal/siteid"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func mustSiteID(t testing.TB) siteid.ID {
	t.Helper()
	id, err := siteid.New()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustCA(t testing.TB, name string, now time.Time) *CA {
	t.Helper()
	ca, err := NewCA(mustSiteID(t), name, now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestCASaveLoad(t *testing.T) {
	ca := mustCA(t, "east", t0)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadCA(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if back.Site() != ca.Site() || back.Name() != "east" {
		t.Fatalf("loaded CA is %s %q, want %s east", back.Site(), back.Name(), ca.Site())
	}
	// The loaded CA must still sign certificates that chain to the original.
	_, csr, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := back.SignClient(t0, csr, mustSiteID(t), "west", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	verifyClient(t, ca, certPEM, t0)

	other := mustCA(t, "other", t0)
	otherKey, _ := other.KeyPEM()
	if _, err := LoadCA(ca.CertPEM(), otherKey); !errors.Is(err, ErrBadCA) {
		t.Fatalf("mismatched key: err = %v, want ErrBadCA", err)
	}
	if _, err := LoadCA([]byte("junk"), keyPEM); !errors.Is(err, ErrBadCA) {
		t.Fatalf("junk cert: err = %v, want ErrBadCA", err)
	}
}

func verifyClient(t *testing.T, ca *CA, certPEM []byte, now time.Time) *x509.Certificate {
	t.Helper()
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not verify: %v", err)
	}
	return cert
}

func TestSignClientBindsPeer(t *testing.T) {
	ca := mustCA(t, "east", t0)
	peer := mustSiteID(t)
	_, csr, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, serial, err := ca.SignClient(t0, csr, peer, "west", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := verifyClient(t, ca, certPEM, t0)
	if got, err := PeerSiteID(cert); err != nil || got != peer {
		t.Fatalf("PeerSiteID = %v, %v, want %v", got, err, peer)
	}
	if CertSerial(cert) != serial {
		t.Fatalf("serial %s, CertSerial %s", serial, CertSerial(cert))
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Fatalf("ExtKeyUsage %v", cert.ExtKeyUsage)
	}
	if cert.Subject.CommonName != "west" {
		t.Fatalf("CN %q", cert.Subject.CommonName)
	}
	if !cert.NotAfter.Equal(t0.Add(24 * time.Hour)) {
		t.Fatalf("NotAfter %v", cert.NotAfter)
	}
	// Expired after its ttl.
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: t0.Add(25 * time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("certificate still valid after its ttl")
	}
	// A ttl beyond the CA's life is clamped to it.
	certPEM, _, err = ca.SignClient(t0, csr, peer, "west", 2*CAValidity)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := ParseCertPEM(certPEM); c.NotAfter.After(ca.Certificate().NotAfter) {
		t.Fatalf("client cert outlives CA: %v > %v", c.NotAfter, ca.Certificate().NotAfter)
	}
}

func TestSignClientRejectsBadCSR(t *testing.T) {
	ca := mustCA(t, "east", t0)
	_, csr, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tampered := slices.Clone(csr)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	for name, in := range map[string][]byte{"empty": nil, "junk": []byte("not a csr"), "bad signature": tampered} {
		if _, _, err := ca.SignClient(t0, in, mustSiteID(t), "w", time.Hour); !errors.Is(err, ErrBadCSR) {
			t.Errorf("%s: err = %v, want ErrBadCSR", name, err)
		}
		if err := CheckCSR(in); !errors.Is(err, ErrBadCSR) {
			t.Errorf("CheckCSR %s: err = %v, want ErrBadCSR", name, err)
		}
	}
	if err := CheckCSR(csr); err != nil {
		t.Errorf("CheckCSR(good) = %v", err)
	}
	if _, _, err := ca.SignClient(t0, csr, siteid.ID{}, "w", time.Hour); err == nil {
		t.Error("zero peer accepted")
	}
	if _, _, err := ca.SignClient(t0, csr, mustSiteID(t), "w", 0); err == nil {
		t.Error("zero ttl accepted")
	}
}

func TestServerCertificate(t *testing.T) {
	ca := mustCA(t, "east", t0)
	c, err := ca.ServerCertificate(t0, []string{"10.0.0.1", "[::1]", "east.example", ""})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: t0, DNSName: "east.example"}); err != nil {
		t.Fatal(err)
	}
	if len(c.Leaf.IPAddresses) != 2 || !slices.Equal(c.Leaf.DNSNames, []string{"east.example"}) {
		t.Fatalf("SANs %v %v", c.Leaf.IPAddresses, c.Leaf.DNSNames)
	}
	if id, err := PeerSiteID(c.Leaf); err != nil || id != ca.Site() {
		t.Fatalf("PeerSiteID = %v, %v", id, err)
	}
}

func TestPeerSiteIDRejects(t *testing.T) {
	id := mustSiteID(t)
	good := SiteURI(id)
	mk := func(us ...string) *x509.Certificate {
		c := &x509.Certificate{}
		for _, s := range us {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = append(c.URIs, u)
		}
		return c
	}
	for name, c := range map[string]*x509.Certificate{
		"none":     mk("https://example.com/"),
		"two":      mk(good.String(), good.String()),
		"bad host": mk("weft://other/" + id.String()),
		"bad id":   mk("weft://site/xyz"),
		"zero":     mk("weft://site/" + siteid.ID{}.String()),
		"query":    mk(good.String() + "?x=1"),
	} {
		if _, err := PeerSiteID(c); !errors.Is(err, ErrNoSiteID) {
			t.Errorf("%s: err = %v, want ErrNoSiteID", name, err)
		}
	}
	if got, err := PeerSiteID(mk("https://example.com/", good.String())); err != nil || got != id {
		t.Errorf("extra non-weft URI: %v, %v", got, err)
	}
}
