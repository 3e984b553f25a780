package opkey

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"weft.dev/weft/internal/siteid"
)

func identityKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

var t0 = time.Unix(1_800_000_000, 0)

// TestCertKnownAnswer pins the encoding and signature of a certificate
// made from fixed keys.
func TestCertKnownAnswer(t *testing.T) {
	id, op := identityKey(1), identityKey(2)
	c := Cert{Serial: 7, NotBefore: t0.Unix(), NotAfter: t0.Add(time.Hour).Unix()}
	copy(c.Identity[:], id.Public().(ed25519.PublicKey))
	copy(c.Key[:], op.Public().(ed25519.PublicKey))
	copy(c.Sig[:], ed25519.Sign(id, c.body([]byte(signLabel))))
	b, _ := c.MarshalBinary()
	const want = "01cecc1507dc1ddd7295951c290888f095adb9044d1b73d696e6df065d683bd4fc6b79c57e6a095239282c04818e96112f3f03a4001ba97a564c23852a3f1ea5fc0780c8ceb40da080cfb40d" +
		"d103aa9f8c245225e937f41ef8af318e2534470e3f3e1ac7b1092b50fe90b01b8214ead5762f388265be72c5b3abd125daf3cd4a1a4dfb8bd0c6701de3dd3b02"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("encoding\n got %s\nwant %s", got, want)
	}
	var d Cert
	if err := d.UnmarshalBinary(b); err != nil || d != c {
		t.Fatalf("round trip: %v %+v", err, d)
	}
	if err := d.Verify(siteid.FromKey(id.Public().(ed25519.PublicKey)), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	id := identityKey(1)
	site := siteid.FromKey(id.Public().(ed25519.PublicKey))
	s, err := New(id, 3, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("weft test\x00hello")
	sig := s.Sign(msg)
	if k, err := VerifyProof(site, s.Identity(), s.CertBytes(), msg, sig, t0.Add(30*time.Minute)); err != nil || !k.Equal(s.Public()) {
		t.Fatalf("good proof: %v", err)
	}
	// The identity key signing directly needs no certificate.
	if _, err := VerifyProof(site, s.Identity(), nil, msg, ed25519.Sign(id, msg), t0); err != nil {
		t.Fatal(err)
	}
	other := identityKey(9)
	otherSite := siteid.FromKey(other.Public().(ed25519.PublicKey))
	forged, _ := New(other, 3, t0, time.Hour)
	tampered := bytes.Clone(s.CertBytes())
	tampered[40] ^= 1 // the operational key
	for name, tc := range map[string]struct {
		site      siteid.ID
		idk, cert []byte
		sig       []byte
		at        time.Time
	}{
		"expired":           {site, s.Identity(), s.CertBytes(), sig, t0.Add(2 * time.Hour)},
		"not yet":           {site, s.Identity(), s.CertBytes(), sig, t0.Add(-Skew - time.Minute)},
		"tampered cert":     {site, s.Identity(), tampered, sig, t0},
		"other site's cert": {site, s.Identity(), forged.CertBytes(), forged.Sign(msg), t0},
		"cert of other id":  {otherSite, other.Public().(ed25519.PublicKey), s.CertBytes(), sig, t0},
		"wrong signature":   {site, s.Identity(), s.CertBytes(), ed25519.Sign(id, msg), t0},
		"no cert, op sig":   {site, s.Identity(), nil, sig, t0},
		"truncated":         {site, s.Identity(), s.CertBytes()[:50], sig, t0},
	} {
		if _, err := VerifyProof(tc.site, tc.idk, tc.cert, msg, tc.sig, tc.at); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrUntrusted) && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPEM(t *testing.T) {
	id := identityKey(1)
	s, _ := New(id, 1, t0, time.Hour)
	b, err := s.PEM()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(b, id.Public().(ed25519.PublicKey))
	if err != nil || !bytes.Equal(p.CertBytes(), s.CertBytes()) || !p.Private().Equal(s.Private()) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := Parse(b, identityKey(2).Public().(ed25519.PublicKey)); err == nil {
		t.Fatal("another site's key accepted")
	}
	if _, err := Parse(b[:len(b)/2], id.Public().(ed25519.PublicKey)); err == nil {
		t.Fatal("half a file accepted")
	}
}

func TestAge(t *testing.T) {
	s, _ := New(identityKey(1), 1, t0, 3*time.Hour)
	c := s.Cert()
	if a := c.Age(t0.Add(2 * time.Hour)); a < 0.66 || a > 0.67 {
		t.Fatalf("age %v", a)
	}
}

func FuzzCert(f *testing.F) {
	s, _ := New(identityKey(1), 1, t0, time.Hour)
	f.Add(s.CertBytes())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Cert
		if c.UnmarshalBinary(b) != nil {
			return
		}
		out, _ := c.MarshalBinary()
		var d Cert
		if err := d.UnmarshalBinary(out); err != nil || d != c {
			t.Fatalf("re-decode: %v", err)
		}
		_ = c.Verify(c.Site(), t0)
	})
}
