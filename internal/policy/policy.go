// Package policy decides which sites may serve and which may consume an
// address when sites belong to different organisations. It is pure: no
// sockets, no clocks; the site package carries a site's Policy in its signed
// record, filters its route table with Allows and checks every stream that
// arrives with it.
//
// # Model
//
// An organisation is an Ed25519 key; its ID is derived from the public key
// (OrgIDOf), as a site's is. The organisation certifies each of its sites
// (Certify): the certificate names the site ID and is signed by the
// organisation key, so anyone holding a site's record can check its
// membership without asking anyone. A site without a valid certificate is
// unorganised.
//
// Within one organisation everything is open, as it was before
// organisations, and so it is among unorganised sites: a network of sites
// none of which has a certificate behaves exactly as before. Across that
// boundary nothing flows unless both sides agree: the organisation of the
// provider (the site that serves an address, or publishes to a subject)
// exports the address to the consumer's organisation, and the consumer
// (the site whose clients connect, or subscribe) imports it from the
// provider's organisation. Exports and imports are per site, in each site's
// signed record, so every site computes the same answer for any pair. An
// unorganised site can be named by no export or import: it shares only with
// other unorganised sites.
package policy

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/siteid"
)

// OrgID names an organisation: the first 16 bytes of SHA-256 of a label
// and its public key. The zero OrgID is no organisation.
type OrgID [16]byte

// orgLabel separates organisation IDs from site IDs of the same key.
const orgLabel = "weft org id v1\x00"

// OrgIDOf is the ID of the organisation whose public key is pub; the zero
// ID for a key of the wrong length.
func OrgIDOf(pub []byte) OrgID {
	if len(pub) != ed25519.PublicKeySize {
		return OrgID{}
	}
	h := sha256.New()
	h.Write([]byte(orgLabel))
	h.Write(pub)
	var id OrgID
	copy(id[:], h.Sum(nil))
	return id
}

// ErrBadOrgID is returned (wrapped) for text that is not an organisation ID.
var ErrBadOrgID = errors.New("bad organisation ID (want the 32 hex digits `weft org id` prints)")

// ParseOrgID parses the 32-hex-digit form made by String; the zero ID,
// which names no organisation, is refused.
func ParseOrgID(s string) (OrgID, error) {
	var id OrgID
	if len(s) != 2*len(id) {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return OrgID{}, fmt.Errorf("%w: %q", ErrBadOrgID, s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil || id.IsZero() {
		return OrgID{}, fmt.Errorf("%w: %q", ErrBadOrgID, s)
	}
	return id, nil
}

func (o OrgID) String() string { return hex.EncodeToString(o[:]) }

// IsZero reports whether o is no organisation.
func (o OrgID) IsZero() bool { return o == OrgID{} }

// MarshalText and UnmarshalText make an OrgID its hex form in JSON and YAML.
func (o OrgID) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

func (o *OrgID) UnmarshalText(b []byte) error {
	id, err := ParseOrgID(string(b))
	if err != nil {
		return err
	}
	*o = id
	return nil
}

// Rule is an export (Orgs are the organisations it is exported to) or an
// import (Orgs are the organisations it is taken from) of one address. For
// events, Address may be a subject pattern ('*', '>'), which covers the
// subscriptions inside it (events.Covers).
type Rule struct {
	Address string  `json:"address"`
	Orgs    []OrgID `json:"orgs"`
}

// Member is what the decision needs of a site: its organisation (zero when
// it has no valid certificate) and its exports and imports.
type Member struct {
	Org     OrgID
	Exports []Rule
	Imports []Rule
}

// Reasons for a decision, the label of the sites' refusal metrics.
const (
	SameOrg     = "same-organisation" // allowed: one organisation, or both unorganised
	Agreed      = "exported-imported" // allowed: exported by the provider, imported by the consumer
	NotExported = "not-exported"      // refused: the provider's site does not export it to the consumer's organisation
	NotImported = "not-imported"      // refused: the consumer's site does not import it from the provider's organisation
)

// AllowsService decides whether the clients of consumer may reach the
// connectors of provider for address (services match exactly). ok is the
// answer; reason says why (one of the reason constants).
func AllowsService(provider, consumer Member, address string) (ok bool, reason string) {
	return allows(provider, consumer, func(r string) bool { return r == address })
}

// AllowsEvents decides whether events that provider publishes may go to
// the subscribers of consumer that subscribed to pattern: the rules must
// cover the pattern.
func AllowsEvents(provider, consumer Member, pattern string) (ok bool, reason string) {
	return allows(provider, consumer, func(r string) bool {
		return r == pattern || events.ValidatePattern(r) == nil && events.Covers(r, pattern)
	})
}

func allows(provider, consumer Member, covers func(rule string) bool) (bool, string) {
	if provider.Org == consumer.Org {
		return true, SameOrg
	}
	// An unorganised site is named by no rule (ParseOrgID refuses the
	// zero ID), so what follows refuses it.
	if !granted(provider.Exports, consumer.Org, covers) {
		return false, NotExported
	}
	if !granted(consumer.Imports, provider.Org, covers) {
		return false, NotImported
	}
	return true, Agreed
}

func granted(rules []Rule, org OrgID, covers func(string) bool) bool {
	if org.IsZero() {
		return false
	}
	return slices.ContainsFunc(rules, func(r Rule) bool { return covers(r.Address) && slices.Contains(r.Orgs, org) })
}

// Cert is an organisation's statement that a site is one of its own.
type Cert struct {
	OrgKey [ed25519.PublicKeySize]byte
	Site   siteid.ID
	Sig    [ed25519.SignatureSize]byte
}

// certLabel separates certificates from everything else an organisation
// key might sign.
const certLabel = "weft org certificate v1\x00"

func certMessage(orgKey []byte, site siteid.ID) []byte {
	return append(append([]byte(certLabel), orgKey...), site[:]...)
}

// Certify makes orgKey's certificate for site.
func Certify(orgKey ed25519.PrivateKey, site siteid.ID) Cert {
	c := Cert{Site: site}
	copy(c.OrgKey[:], orgKey.Public().(ed25519.PublicKey))
	copy(c.Sig[:], ed25519.Sign(orgKey, certMessage(c.OrgKey[:], site)))
	return c
}

// ErrBadCert is returned (wrapped) by Cert.Verify.
var ErrBadCert = errors.New("bad organisation certificate")

// Verify checks that c certifies site.
func (c *Cert) Verify(site siteid.ID) error {
	if c.Site != site {
		return fmt.Errorf("%w: it is for site %s, not %s", ErrBadCert, c.Site, site)
	}
	if !ed25519.Verify(c.OrgKey[:], certMessage(c.OrgKey[:], site), c.Sig[:]) {
		return fmt.Errorf("%w: the signature of organisation %s does not check", ErrBadCert, c.Org())
	}
	return nil
}

// Org is the organisation that made c.
func (c *Cert) Org() OrgID { return OrgIDOf(c.OrgKey[:]) }
