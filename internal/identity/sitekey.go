package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"weft.dev/weft/internal/siteid"
)

// ErrBadSiteKey is returned (wrapped) by [ParseSiteKey] for input that is
// not a PEM PKCS#8 Ed25519 private key.
var ErrBadSiteKey = errors.New("identity: bad site identity key (want a PEM PKCS#8 Ed25519 private key)")

// SiteKey is a site's long-lived identity key. The site's ID is derived
// from its public half ([siteid.FromKey]), so whatever it signs (its site
// records, its link hellos, its revocation) is checked against the ID alone,
// with no certificate authority. A SiteKey is immutable and safe for
// concurrent use.
type SiteKey struct {
	priv ed25519.PrivateKey
	id   siteid.ID
}

// NewSiteKey makes a fresh identity key from crypto/rand.
func NewSiteKey() (*SiteKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: new site key: %w", err)
	}
	return siteKey(priv), nil
}

func siteKey(priv ed25519.PrivateKey) *SiteKey {
	return &SiteKey{priv: priv, id: siteid.FromKey(priv.Public().(ed25519.PublicKey))}
}

// ParseSiteKey reads a key written by [SiteKey.PEM].
func ParseSiteKey(b []byte) (*SiteKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, ErrBadSiteKey
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSiteKey, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: key is %T", ErrBadSiteKey, k)
	}
	return siteKey(priv), nil
}

// PEM returns the private key as PKCS#8 PEM. The caller must store it
// readable only by the site (mode 0600): whoever holds it is the site.
func (k *SiteKey) PEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("identity: marshal site key: %w", err)
	}
	return pemEncode("PRIVATE KEY", der), nil
}

// ID is the site ID the key names.
func (k *SiteKey) ID() siteid.ID { return k.id }

// Public is the public key, as carried in site records and hellos.
func (k *SiteKey) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// Private is the signing key, for the router's records; the caller must not
// let it leave the process.
func (k *SiteKey) Private() ed25519.PrivateKey { return k.priv }

// Identity is the public key, as a [Prover].
func (k *SiteKey) Identity() ed25519.PublicKey { return k.Public() }

// CertBytes is empty: the identity key needs no certificate.
func (k *SiteKey) CertBytes() []byte { return nil }

// Prover proves a site's identity in link hellos and token redemption:
// the identity key itself ([SiteKey]) or an operational key it certified
// (opkey.Signer), whose certificate goes with the proof.
type Prover interface {
	Identity() ed25519.PublicKey
	CertBytes() []byte
	Sign(msg []byte) []byte
}

// Sign signs msg, which must begin with a label naming what it is (so a
// signature on one kind of statement is never valid as another).
func (k *SiteKey) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// VerifySiteSignature checks that sig is pub's signature of msg and that pub
// is the key of site; it is [SiteKey.Sign]'s other half.
func VerifySiteSignature(site siteid.ID, pub, msg, sig []byte) error {
	switch {
	case len(pub) != ed25519.PublicKeySize:
		return fmt.Errorf("identity: site key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	case siteid.FromKey(pub) != site:
		return fmt.Errorf("identity: key is not the key of site %s", site)
	case len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig):
		return fmt.Errorf("identity: bad signature of site %s", site)
	}
	return nil
}
