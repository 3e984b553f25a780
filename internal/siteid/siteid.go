// Package siteid is the one type that names a site everywhere in weft: in
// certificates and tokens (identity), in site records and route tables
// (routing), in stream headers (link) and in the event ledger. It is a leaf:
// it imports nothing of weft's, so the pure packages can use it too.
package siteid

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// ID is a site's stable 128-bit identity. Its text form is 32 lowercase hex
// digits, which is also how it appears in JSON and YAML. IDs compare
// bytewise, so "lower site ID" in the router's tie-breaks means
// [ID.Compare] < 0.
type ID [16]byte

// ErrBad is returned (wrapped) for text that is not 32 hex digits.
var ErrBad = errors.New("bad site ID (want 32 hex digits)")

// keyLabel separates the hash that names a site from every other use of
// SHA-256 over the same key bytes.
const keyLabel = "weft site id v1\x00"

// FromKey returns the ID of the site whose Ed25519 identity public key is
// pub: the first 16 bytes of SHA-256(label || pub). Anyone holding a signed
// statement and its key can check that the statement names the site whose
// key signed it, with no certificate authority in between. A key of the
// wrong length has no ID: FromKey returns the zero ID, which every check
// refuses.
func FromKey(pub []byte) ID {
	if len(pub) != KeySize {
		return ID{}
	}
	h := sha256.New()
	h.Write([]byte(keyLabel))
	h.Write(pub)
	var id ID
	copy(id[:], h.Sum(nil))
	return id
}

// KeySize is the length of an Ed25519 public key, the only kind [FromKey]
// names.
const KeySize = 32

// New returns a random ID from crypto/rand. Sites name themselves with
// [FromKey]; random IDs are what sites made before identity keys had, and
// what tests use.
func New() (ID, error) {
	var id ID
	if _, err := rand.Read(id[:]); err != nil {
		return ID{}, fmt.Errorf("new site ID: %w", err)
	}
	return id, nil
}

// Parse parses the 32-hex-digit form made by [ID.String]. Upper-case digits
// are accepted so that IDs pasted from elsewhere work; String always prints
// lower case.
func Parse(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		// Hostile input must not bloat error messages and logs.
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return ID{}, fmt.Errorf("%w: %q", ErrBad, s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("%w: %q", ErrBad, s)
	}
	return id, nil
}

// String returns 32 lowercase hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID, which no real site has: it marks
// a missing ID, and records naming it are refused.
func (id ID) IsZero() bool { return id == ID{} }

// Compare orders IDs bytewise: -1, 0 or +1.
func (id ID) Compare(other ID) int { return bytes.Compare(id[:], other[:]) }

// MarshalText makes JSON and YAML carry the hex form rather than 16 numbers.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText accepts the form made by MarshalText.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
