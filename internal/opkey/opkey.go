// Package opkey is a site's operational signing key and the certificate
// its identity key makes for it, as Tor's ed25519 identity key certifies
// short-lived signing keys. The identity key (identity.key) defines the
// site ID and signs nothing but certificates; the operational key signs
// site records and the key proofs of link hellos and token redemption, and
// carries its certificate with it. Rotating the operational key changes
// nothing its peers pin: they check the chain site ID → identity key →
// certificate → operational key → signature.
//
// The package is pure and a leaf (it imports only siteid): no I/O, and the
// time is always the caller's.
package opkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"weft.dev/weft/internal/siteid"
)

// Sizes and limits of the certificate encoding (see spec in Cert).
const (
	version = 1
	// MaxCertSize bounds an encoded certificate: version, two keys, three
	// varints, signature.
	MaxCertSize = 1 + 2*ed25519.PublicKeySize + 3*binary.MaxVarintLen64 + ed25519.SignatureSize
	minCertSize = 1 + 2*ed25519.PublicKeySize + 3 + ed25519.SignatureSize
	signLabel   = "weft operational key v1\x00"
	// Skew is how far a verifier's clock may lag the certificate's
	// issuer: a certificate is good from NotBefore-Skew.
	Skew = 5 * time.Minute
)

var (
	// ErrInvalid is returned (wrapped) for bytes that are not a
	// certificate.
	ErrInvalid = errors.New("opkey: invalid operational key certificate")
	// ErrUntrusted is returned (wrapped) for a certificate that does not
	// chain to the site it is presented for, is not signed by its
	// identity key, or is outside its validity.
	ErrUntrusted = errors.New("opkey: operational key certificate does not check")
)

// Cert is an identity key's statement that Key may sign for its site from
// NotBefore to NotAfter. Serial orders a site's certificates; a higher one
// is newer.
//
// Encoding: version (1 byte, 1), identity key (32), operational key (32),
// serial (uvarint), not-before and not-after (Unix seconds, varint), then
// the identity key's Ed25519 signature (64) over "weft operational key
// v1\x00" and every byte before it.
type Cert struct {
	Identity  [ed25519.PublicKeySize]byte
	Key       [ed25519.PublicKeySize]byte
	Serial    uint64
	NotBefore int64
	NotAfter  int64
	Sig       [ed25519.SignatureSize]byte
}

// Site is the site the certificate speaks for: the hash of its identity
// key.
func (c *Cert) Site() siteid.ID { return siteid.FromKey(c.Identity[:]) }

func (c *Cert) body(b []byte) []byte {
	b = append(b, version)
	b = append(b, c.Identity[:]...)
	b = append(b, c.Key[:]...)
	b = binary.AppendUvarint(b, c.Serial)
	b = binary.AppendVarint(b, c.NotBefore)
	return binary.AppendVarint(b, c.NotAfter)
}

// MarshalBinary encodes the certificate.
func (c *Cert) MarshalBinary() ([]byte, error) {
	return append(c.body(make([]byte, 0, MaxCertSize)), c.Sig[:]...), nil
}

// UnmarshalBinary decodes exactly one certificate; it does not check it
// (see [Cert.Verify]).
func (c *Cert) UnmarshalBinary(b []byte) error {
	if len(b) < minCertSize || len(b) > MaxCertSize {
		return fmt.Errorf("%w: %d bytes, want %d to %d", ErrInvalid, len(b), minCertSize, MaxCertSize)
	}
	if b[0] != version {
		return fmt.Errorf("%w: version %d, want %d", ErrInvalid, b[0], version)
	}
	var out Cert
	b = b[1:]
	b = b[copy(out.Identity[:], b):]
	b = b[copy(out.Key[:], b):]
	var n int
	if out.Serial, n = binary.Uvarint(b); n <= 0 {
		return fmt.Errorf("%w: bad serial", ErrInvalid)
	}
	b = b[n:]
	if out.NotBefore, n = binary.Varint(b); n <= 0 {
		return fmt.Errorf("%w: bad not-before", ErrInvalid)
	}
	b = b[n:]
	if out.NotAfter, n = binary.Varint(b); n <= 0 {
		return fmt.Errorf("%w: bad not-after", ErrInvalid)
	}
	b = b[n:]
	if len(b) != len(out.Sig) {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrInvalid, len(b), len(out.Sig))
	}
	copy(out.Sig[:], b)
	*c = out
	return nil
}

// Verify checks that the certificate speaks for site, that its identity
// key signed it and that now is within its validity (less [Skew]).
func (c *Cert) Verify(site siteid.ID, now time.Time) error {
	switch t := now.Unix(); {
	case c.Site() != site:
		return fmt.Errorf("%w: its identity key is site %s's, not %s's", ErrUntrusted, c.Site(), site)
	case !ed25519.Verify(c.Identity[:], c.body([]byte(signLabel)), c.Sig[:]):
		return fmt.Errorf("%w: bad signature (site %s, serial %d)", ErrUntrusted, site, c.Serial)
	case t < c.NotBefore-int64(Skew/time.Second):
		return fmt.Errorf("%w: not valid before %s (site %s, serial %d): is this clock right?", ErrUntrusted, time.Unix(c.NotBefore, 0).UTC(), site, c.Serial)
	case t > c.NotAfter:
		return fmt.Errorf("%w: expired at %s (site %s, serial %d)", ErrUntrusted, time.Unix(c.NotAfter, 0).UTC(), site, c.Serial)
	}
	return nil
}

// Age is where now is in the certificate's life: 0 at NotBefore, 1 at
// NotAfter.
func (c *Cert) Age(now time.Time) float64 {
	life := c.NotAfter - c.NotBefore
	if life <= 0 {
		return 1
	}
	return float64(now.Unix()-c.NotBefore) / float64(life)
}

// VerifyProof checks sig over msg as a statement of site: either sig is
// the signature of the site's identity key itself (certBytes empty), or
// certBytes is a certificate that checks for site at now and sig is its
// operational key's. It returns the key that signed.
func VerifyProof(site siteid.ID, identityKey, certBytes, msg, sig []byte, now time.Time) (ed25519.PublicKey, error) {
	if len(identityKey) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: key of %d bytes, signature of %d", ErrUntrusted, len(identityKey), len(sig))
	}
	signer := ed25519.PublicKey(identityKey)
	if len(certBytes) > 0 {
		var c Cert
		if err := c.UnmarshalBinary(certBytes); err != nil {
			return nil, err
		}
		if string(c.Identity[:]) != string(identityKey) {
			return nil, fmt.Errorf("%w: certificate of another identity key", ErrUntrusted)
		}
		if err := c.Verify(site, now); err != nil {
			return nil, err
		}
		signer = c.Key[:]
	} else if siteid.FromKey(identityKey) != site {
		return nil, fmt.Errorf("%w: the key is not site %s's", ErrUntrusted, site)
	}
	if !ed25519.Verify(signer, msg, sig) {
		return nil, fmt.Errorf("%w: bad signature of site %s", ErrUntrusted, site)
	}
	return signer, nil
}

// Signer is an operational key with its certificate. It is immutable and
// safe for concurrent use.
type Signer struct {
	priv ed25519.PrivateKey
	cert Cert
	raw  []byte
}

// New makes a fresh operational key for the site of identity (its private
// key), certified from now for life, with serial.
func New(identity ed25519.PrivateKey, serial uint64, now time.Time, life time.Duration) (*Signer, error) {
	if life <= 0 || life > 100*365*24*time.Hour {
		return nil, fmt.Errorf("opkey: certificate life %v out of range", life)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("opkey: new key: %w", err)
	}
	return Certify(identity, priv, serial, now, life), nil
}

// Certify makes the signer of priv, certified by identity from now for
// life with serial; [New] with a key of the caller's (known-answer tests).
func Certify(identity, priv ed25519.PrivateKey, serial uint64, now time.Time, life time.Duration) *Signer {
	c := Cert{Serial: serial, NotBefore: now.Unix(), NotAfter: now.Add(life).Unix()}
	copy(c.Identity[:], identity.Public().(ed25519.PublicKey))
	copy(c.Key[:], priv.Public().(ed25519.PublicKey))
	copy(c.Sig[:], ed25519.Sign(identity, c.body([]byte(signLabel))))
	return newSigner(priv, c)
}

func newSigner(priv ed25519.PrivateKey, c Cert) *Signer {
	raw, _ := c.MarshalBinary()
	return &Signer{priv: priv, cert: c, raw: raw}
}

// Site is the site the key signs for.
func (s *Signer) Site() siteid.ID { return s.cert.Site() }

// Identity is the site's identity public key.
func (s *Signer) Identity() ed25519.PublicKey { return s.cert.Identity[:] }

// Public is the operational public key.
func (s *Signer) Public() ed25519.PublicKey { return s.cert.Key[:] }

// Cert is the key's certificate.
func (s *Signer) Cert() Cert { return s.cert }

// CertBytes is the encoded certificate, as statements carry it; read-only.
func (s *Signer) CertBytes() []byte { return s.raw }

// Sign signs msg, which must begin with a label naming what it is.
func (s *Signer) Sign(msg []byte) []byte { return ed25519.Sign(s.priv, msg) }

// Private is the signing key, for the router's records; it must not leave
// the process.
func (s *Signer) Private() ed25519.PrivateKey { return s.priv }

const (
	pemKey  = "PRIVATE KEY"
	pemCert = "WEFT OPERATIONAL KEY CERTIFICATE"
)

// PEM encodes the key (PKCS#8) and its certificate, for a file readable
// only by the site.
func (s *Signer) PEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(s.priv)
	if err != nil {
		return nil, fmt.Errorf("opkey: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: pemKey, Bytes: der})
	return append(b, pem.EncodeToMemory(&pem.Block{Type: pemCert, Bytes: s.raw})...), nil
}

// Parse reads what [Signer.PEM] wrote, checking that the key is the one
// certified and that the certificate is identity's (its signature, not its
// validity: an expired one is replaced by the caller).
func Parse(b []byte, identity ed25519.PublicKey) (*Signer, error) {
	var priv ed25519.PrivateKey
	var c Cert
	var haveCert bool
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case pemKey:
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("opkey: %w", err)
			}
			var ok bool
			if priv, ok = k.(ed25519.PrivateKey); !ok {
				return nil, fmt.Errorf("opkey: key is %T, want Ed25519", k)
			}
		case pemCert:
			if err := c.UnmarshalBinary(blk.Bytes); err != nil {
				return nil, err
			}
			haveCert = true
		}
	}
	switch {
	case priv == nil || !haveCert:
		return nil, errors.New("opkey: want a PRIVATE KEY and a " + pemCert + " PEM block")
	case !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(c.Key[:])):
		return nil, errors.New("opkey: the certificate is not the key's")
	case !ed25519.PublicKey(c.Identity[:]).Equal(identity):
		return nil, errors.New("opkey: the certificate is another site's")
	}
	// Validity is the caller's business; the signature is checked with a
	// time inside it.
	if err := c.Verify(c.Site(), time.Unix(c.NotAfter, 0)); err != nil {
		return nil, err
	}
	return newSigner(priv, c), nil
}
