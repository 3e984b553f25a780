package identity

import (
	"bytes"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"weft.dev/weft/internal/siteid"
)

func TestSiteKeyRoundTrip(t *testing.T) {
	k, err := NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != siteid.FromKey(k.Public()) {
		t.Fatal("ID is not derived from the key")
	}
	p, err := k.PEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSiteKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID() != k.ID() || !bytes.Equal(back.Public(), k.Public()) {
		t.Fatal("key changed through PEM")
	}
	msg := []byte("weft test\x00hello")
	sig := k.Sign(msg)
	if err := VerifySiteSignature(k.ID(), k.Public(), msg, sig); err != nil {
		t.Fatal(err)
	}
	other, _ := NewSiteKey()
	for name, err := range map[string]error{
		"other site":   VerifySiteSignature(other.ID(), k.Public(), msg, sig),
		"other key":    VerifySiteSignature(k.ID(), other.Public(), msg, sig),
		"altered msg":  VerifySiteSignature(k.ID(), k.Public(), append(msg, 0), sig),
		"short key":    VerifySiteSignature(k.ID(), k.Public()[:5], msg, sig),
		"short sig":    VerifySiteSignature(k.ID(), k.Public(), msg, sig[:5]),
		"other signer": VerifySiteSignature(k.ID(), k.Public(), msg, other.Sign(msg)),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// An ECDSA key (the CA's) is not a site key.
	ca := mustCA(t, "x", time.Now())
	caKey, _ := ca.KeyPEM()
	for _, in := range [][]byte{nil, []byte("junk"), caKey} {
		if _, err := ParseSiteKey(in); !errors.Is(err, ErrBadSiteKey) {
			t.Errorf("ParseSiteKey(%.20q) = %v, want ErrBadSiteKey", in, err)
		}
	}
}

// A site that moves to a key-derived ID recertifies its CA: credentials it
// issued before still get in, peers that pinned its old ID and old CA
// certificate still accept it, and new peers see the new ID.
func TestRecertifiedCAKeepsLinks(t *testing.T) {
	now := time.Now()
	is := newIssuer(t, "issuer", now)
	oldPool := is.ca.Pool()
	oldID := is.ca.Site()
	redeemer := mustSiteID(t)
	// Issued before the move, under the old CA certificate.
	cred, _ := is.clientCert(t, is.ca, redeemer, redeemer, now, time.Hour)

	newID := mustSiteID(t)
	moved, err := is.ca.Recertify(newID, now)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Site() != newID {
		t.Fatalf("recertified CA names %s", moved.Site())
	}
	legacySrv, err := is.ca.ServerCertificate(now, nil)
	if err != nil {
		t.Fatal(err)
	}
	is.ca = moved
	if is.server, err = moved.ServerCertificate(now, nil); err != nil {
		t.Fatal(err)
	}
	srvCfg := func() *tls.Config {
		cfg := is.tlsConfig()
		ServeLegacyID(cfg, oldID, legacySrv)
		return cfg
	}
	for _, tc := range []struct {
		name   string
		pool   func() *tls.Config
		expect siteid.ID
	}{
		{"old peer: old CA, old ID", func() *tls.Config { return ClientTLSConfig(oldPool, oldID, cred, ALPNLink) }, oldID},
		{"old CA, new ID", func() *tls.Config { return ClientTLSConfig(oldPool, newID, cred, ALPNLink) }, newID},
		{"new CA, new ID", func() *tls.Config { return ClientTLSConfig(moved.Pool(), newID, cred, ALPNLink) }, newID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var saw siteid.ID
			srvErr, cliErr := pair(t, srvCfg(), tc.pool(), serverSaysOK, func(c *tls.Conn) error {
				saw, _ = PeerSiteID(c.ConnectionState().PeerCertificates[0])
				return clientHearsOK(c)
			})
			if srvErr != nil || cliErr != nil {
				t.Fatalf("server %v, client %v", srvErr, cliErr)
			}
			if saw != tc.expect {
				t.Errorf("client saw %s, want %s", saw, tc.expect)
			}
		})
	}
}
