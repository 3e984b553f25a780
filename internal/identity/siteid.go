package identity

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
)

// SiteID is a site's stable random 128-bit identity. Its text form is 32
// lowercase hex digits, which is also how it appears in JSON.
type SiteID [16]byte

// ErrBadSiteID is returned (wrapped) for a site ID that is not 32 hex digits.
var ErrBadSiteID = errors.New("identity: bad site ID (want 32 hex digits)")

// NewSiteID returns a random site ID from crypto/rand.
func NewSiteID() (SiteID, error) {
	var id SiteID
	if _, err := rand.Read(id[:]); err != nil {
		return SiteID{}, fmt.Errorf("identity: new site ID: %w", err)
	}
	return id, nil
}

// ParseSiteID parses the 32-hex-digit form made by [SiteID.String].
// Upper-case digits are accepted; String always prints lower case.
func ParseSiteID(s string) (SiteID, error) {
	var id SiteID
	if len(s) != 2*len(id) {
		return SiteID{}, fmt.Errorf("%w: %q", ErrBadSiteID, truncate(s, 40))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return SiteID{}, fmt.Errorf("%w: %q", ErrBadSiteID, s)
	}
	return id, nil
}

// String returns 32 lowercase hex digits.
func (id SiteID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID, which no real site has; it marks
// a missing ID in messages and records.
func (id SiteID) IsZero() bool { return id == SiteID{} }

// URI returns weft://site/<hex>, the SAN that binds a certificate to id.
func (id SiteID) URI() *url.URL {
	return &url.URL{Scheme: uriScheme, Host: uriHost, Path: "/" + id.String()}
}

// MarshalText makes JSON and YAML carry the hex form rather than 16 numbers.
func (id SiteID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText accepts the form made by MarshalText.
func (id *SiteID) UnmarshalText(b []byte) error {
	v, err := ParseSiteID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

const (
	uriScheme = "weft"
	uriHost   = "site"
)

// truncate keeps hostile input from bloating error messages and logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
