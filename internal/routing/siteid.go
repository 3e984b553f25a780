package routing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
)

// SiteID is a site's stable 128-bit identity. The router compares IDs
// bytewise, so "lower site ID" in tie-breaks means [SiteID.Compare] < 0.
type SiteID [16]byte

// ErrBadSiteID is returned (wrapped) for text that is not 32 hex digits.
var ErrBadSiteID = errors.New("routing: bad site ID (want 32 hex digits)")

// ParseSiteID parses the 32-hex-digit form made by [SiteID.String].
// Upper-case digits are accepted so IDs pasted from elsewhere work; String
// always prints lower case.
func ParseSiteID(s string) (SiteID, error) {
	var id SiteID
	if len(s) != 2*len(id) {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return SiteID{}, fmt.Errorf("%w: %q", ErrBadSiteID, s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return SiteID{}, fmt.Errorf("%w: %q", ErrBadSiteID, s)
	}
	return id, nil
}

// String returns 32 lowercase hex digits.
func (id SiteID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID. No real site has it, so records
// naming it are refused.
func (id SiteID) IsZero() bool { return id == SiteID{} }

// Compare orders IDs bytewise: -1, 0 or +1.
func (id SiteID) Compare(other SiteID) int { return bytes.Compare(id[:], other[:]) }

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
