// Package revocation is the signed statement that takes a site out of a
// weft network for good. A site that receives one it can verify refuses the
// revoked site's records and links from then on, drops it from every table,
// keeps the statement across restarts and passes it to every neighbour, so
// it reaches the whole network and stays there.
//
// A statement is signed either by the revoked site's own identity key
// ([BySite]: the ID is the key's hash, so anyone can check it with no other
// knowledge; an operator who lost control of a site's key uses it) or by an
// organisation key that certified the site ([ByOrganisation]), which the
// caller checks with an [Authority] (a site: the organisation whose
// certificate the revoked site announces); without one they are refused.
//
// A third kind ([OperationalKey]) revokes one operational key of a site
// (package opkey), not the site: signed by the site's identity key, it
// makes every site refuse records and proofs signed by that key, even
// within its certificate's validity, while the site goes on with the keys
// it certifies after.
//
// The package is pure: no I/O, no clock (the issue time is the caller's).
package revocation

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"weft.dev/weft/internal/siteid"
)

// Kind says whose key signed a statement.
type Kind uint8

// Kinds of statement.
const (
	// BySite: signed by the revoked site's identity key.
	BySite Kind = 1
	// ByOrganisation: signed by the key of an organisation that certified
	// the site; checked by an [Authority].
	ByOrganisation Kind = 2
	// OperationalKey: signed by the site's identity key, revokes the
	// operational key Statement.Revoked only.
	OperationalKey Kind = 3
)

// Bounds.
const (
	MaxReasonLen = 256
	version      = 1
	signLabel    = "weft revocation v1\x00"
	maxSize      = 1 + 1 + 16 + 32 + 32 + 10 + 2 + MaxReasonLen + 64
)

var (
	// ErrInvalid is returned (wrapped) for bytes that are not a statement.
	ErrInvalid = errors.New("revocation: invalid statement")
	// ErrUnauthorized is returned (wrapped) for a statement whose key may
	// not revoke the site, or whose signature does not check.
	ErrUnauthorized = errors.New("revocation: statement not signed by a key that may revoke the site")
)

// Authority decides whether the organisation key orgKey may revoke site;
// nil, or an error, refuses.
type Authority func(site siteid.ID, orgKey []byte) error

// Statement revokes Site.
type Statement struct {
	Kind Kind
	Site siteid.ID
	Key  [ed25519.PublicKeySize]byte // the signer's public key
	// Revoked is the operational key an [OperationalKey] statement
	// revokes; zero (and not encoded) for the other kinds.
	Revoked [ed25519.PublicKeySize]byte
	Issued  int64 // Unix seconds; informational
	Reason  string
	Sig     [ed25519.SignatureSize]byte
}

// New makes a statement revoking site, signed by key. For [BySite], key must
// be the site's own identity key. For [OperationalKey] use [NewKey].
func New(kind Kind, site siteid.ID, key ed25519.PrivateKey, issued int64, reason string) (Statement, error) {
	if kind == OperationalKey {
		return Statement{}, fmt.Errorf("%w: an operational key revocation names the key (NewKey)", ErrInvalid)
	}
	return newStatement(Statement{Kind: kind, Site: site, Issued: issued, Reason: reason}, key)
}

// NewKey makes a statement revoking the operational key revoked of the site
// whose identity key is identity.
func NewKey(identity ed25519.PrivateKey, revoked ed25519.PublicKey, issued int64, reason string) (Statement, error) {
	s := Statement{Kind: OperationalKey, Site: siteid.FromKey(identity.Public().(ed25519.PublicKey)), Issued: issued, Reason: reason}
	if len(revoked) != len(s.Revoked) {
		return Statement{}, fmt.Errorf("%w: revoked key of %d bytes", ErrInvalid, len(revoked))
	}
	copy(s.Revoked[:], revoked)
	return newStatement(s, identity)
}

func newStatement(s Statement, key ed25519.PrivateKey) (Statement, error) {
	copy(s.Key[:], key.Public().(ed25519.PublicKey))
	if err := s.validate(); err != nil {
		return Statement{}, err
	}
	copy(s.Sig[:], ed25519.Sign(key, s.signed()))
	return s, nil
}

func (s *Statement) validate() error {
	switch {
	case s.Kind != BySite && s.Kind != ByOrganisation && s.Kind != OperationalKey:
		return fmt.Errorf("%w: unknown kind %d", ErrInvalid, s.Kind)
	case (s.Kind == OperationalKey) != (s.Revoked != [ed25519.PublicKeySize]byte{}):
		return fmt.Errorf("%w: a revoked key goes with kind %d only, and it always has one", ErrInvalid, OperationalKey)
	case s.Site.IsZero():
		return fmt.Errorf("%w: zero site ID", ErrInvalid)
	case len(s.Reason) > MaxReasonLen:
		return fmt.Errorf("%w: reason is %d bytes, limit %d", ErrInvalid, len(s.Reason), MaxReasonLen)
	case !utf8.ValidString(s.Reason):
		return fmt.Errorf("%w: reason is not UTF-8", ErrInvalid)
	}
	return nil
}

func (s *Statement) body(b []byte) []byte {
	b = append(b, version, byte(s.Kind))
	b = append(b, s.Site[:]...)
	b = append(b, s.Key[:]...)
	if s.Kind == OperationalKey {
		b = append(b, s.Revoked[:]...)
	}
	b = binary.AppendVarint(b, s.Issued)
	b = binary.AppendUvarint(b, uint64(len(s.Reason)))
	return append(b, s.Reason...)
}

func (s *Statement) signed() []byte { return s.body([]byte(signLabel)) }

// MarshalBinary encodes the statement: version, kind, site, key, the
// revoked key (32 bytes, kind 3 only), issued (signed varint), reason
// (varint length, bytes), signature.
func (s *Statement) MarshalBinary() ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	return append(s.body(make([]byte, 0, maxSize)), s.Sig[:]...), nil
}

// UnmarshalBinary decodes exactly one statement, bounded before anything is
// allocated. It does not verify the signature: call [Statement.Verify].
func (s *Statement) UnmarshalBinary(b []byte) error {
	if len(b) > maxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalid, len(b), maxSize)
	}
	var out Statement
	if len(b) < 2+16+32 {
		return fmt.Errorf("%w: truncated", ErrInvalid)
	}
	if b[0] != version {
		return fmt.Errorf("%w: version %d, want %d", ErrInvalid, b[0], version)
	}
	out.Kind = Kind(b[1])
	copy(out.Site[:], b[2:])
	copy(out.Key[:], b[18:])
	b = b[50:]
	if out.Kind == OperationalKey {
		if len(b) < len(out.Revoked) {
			return fmt.Errorf("%w: truncated", ErrInvalid)
		}
		b = b[copy(out.Revoked[:], b):]
	}
	issued, n := binary.Varint(b)
	if n <= 0 {
		return fmt.Errorf("%w: bad issue time", ErrInvalid)
	}
	out.Issued, b = issued, b[n:]
	l, n := binary.Uvarint(b)
	if n <= 0 || l > MaxReasonLen || l > math.MaxInt || int(l) > len(b[n:]) {
		return fmt.Errorf("%w: bad reason length", ErrInvalid)
	}
	b = b[n:]
	out.Reason, b = string(b[:l]), b[l:]
	if len(b) != len(out.Sig) {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrInvalid, len(b), len(out.Sig))
	}
	copy(out.Sig[:], b)
	if err := out.validate(); err != nil {
		return err
	}
	*s = out
	return nil
}

// Verify checks that the statement is signed by a key that may revoke its
// site: the site's own (its ID is the key's hash), or for [ByOrganisation]
// one that org accepts.
func (s *Statement) Verify(org Authority) error {
	if err := s.validate(); err != nil {
		return err
	}
	switch s.Kind {
	case BySite, OperationalKey:
		if siteid.FromKey(s.Key[:]) != s.Site {
			return fmt.Errorf("%w: the key is not site %s's", ErrUnauthorized, s.Site)
		}
	case ByOrganisation:
		if org == nil {
			return fmt.Errorf("%w: organisation statements are not accepted here", ErrUnauthorized)
		}
		if err := org(s.Site, s.Key[:]); err != nil {
			return fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
	}
	if !ed25519.Verify(s.Key[:], s.signed(), s.Sig[:]) {
		return fmt.Errorf("%w: bad signature", ErrUnauthorized)
	}
	return nil
}
