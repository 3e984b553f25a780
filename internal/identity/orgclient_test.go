package identity

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"
)

// orgChain is the parsed chain of an organisation event client
// certificate for name, as a TLS handshake presents it.
func orgChain(t *testing.T, org ed25519.PrivateKey, name string, now time.Time) []*x509.Certificate {
	t.Helper()
	certPEM, keyPEM, err := SignOrgEventClient(org, "acme", name, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for _, der := range kp.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// An organisation's event client certificate checks against the
// organisation's key only, within its validity, with the organisation's
// CA certificate beside it, and names its credential.
func TestVerifyOrgEventClient(t *testing.T) {
	_, org, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	orgPub := org.Public().(ed25519.PublicKey)
	now := time.Now()
	good := orgChain(t, org, "shop", now)
	foreign := orgChain(t, other, "shop", now)
	if name, err := VerifyOrgEventClient(good, orgPub, now); err != nil || name != "shop" {
		t.Fatalf("good chain: %q, %v", name, err)
	}
	for what, tc := range map[string]struct {
		certs []*x509.Certificate
		at    time.Time
	}{
		"another organisation's":                 {foreign, now},
		"the leaf alone":                         {good[:1], now},
		"expired":                                {good, now.Add(2 * time.Hour)},
		"another organisation's CA beside it":    {[]*x509.Certificate{good[0], foreign[1]}, now},
		"a leaf of another organisation's CA":    {[]*x509.Certificate{foreign[0], good[1]}, now},
		"the CA certificate as the client's own": {[]*x509.Certificate{good[1], good[1]}, now},
	} {
		if _, err := VerifyOrgEventClient(tc.certs, orgPub, tc.at); !errors.Is(err, ErrOrgClient) {
			t.Errorf("%s: %v, want ErrOrgClient", what, err)
		}
	}
	if _, _, err := SignOrgEventClient(org, "acme", "Not A Name", now, time.Hour); err == nil {
		t.Error("a certificate for an invalid credential name was made")
	}
}

// A client's certificates come off the network: whatever they hold,
// VerifyOrgEventClient answers with an error or a valid name, never a
// panic.
func FuzzVerifyOrgEventClient(f *testing.F) {
	_, org, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	certPEM, _, err := SignOrgEventClient(org, "acme", "shop", now, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	leaf, rest := pem.Decode(certPEM)
	ca, _ := pem.Decode(rest)
	f.Add(leaf.Bytes, ca.Bytes)
	f.Add(ca.Bytes, leaf.Bytes)
	f.Fuzz(func(t *testing.T, leafDER, caDER []byte) {
		l, err1 := x509.ParseCertificate(leafDER)
		c, err2 := x509.ParseCertificate(caDER)
		if err1 != nil || err2 != nil {
			return
		}
		name, err := VerifyOrgEventClient([]*x509.Certificate{l, c}, org.Public().(ed25519.PublicKey), now)
		if err == nil && name != "shop" {
			t.Fatalf("a chain the organisation did not sign for %q checks", name)
		}
	})
}
