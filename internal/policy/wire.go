package policy

import (
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"

	"weft.dev/weft/internal/siteid"
)

// Bounds on a Policy: it arrives in other sites' records.
const (
	MaxRules       = 64  // exports, and imports, of one site
	MaxOrgsPerRule = 16  // organisations one rule names
	MaxAddressLen  = 253 // bytes of a rule's address
	policyVersion  = 1
	certSize       = 32 + 16 + 64
)

// Policy is what a site announces in its record: its organisation's
// certificate, if it has one, and its exports and imports.
type Policy struct {
	Cert    *Cert
	Exports []Rule
	Imports []Rule
}

// ErrInvalid is returned (wrapped, with what is wrong) for a Policy that
// breaks the bounds or does not decode.
var ErrInvalid = errors.New("invalid policy")

// Validate checks the bounds and that every rule names organisations.
func (p *Policy) Validate() error {
	for _, rs := range []struct {
		what  string
		rules []Rule
	}{{"exports", p.Exports}, {"imports", p.Imports}} {
		if len(rs.rules) > MaxRules {
			return fmt.Errorf("%w: %d %s, limit %d", ErrInvalid, len(rs.rules), rs.what, MaxRules)
		}
		for _, r := range rs.rules {
			switch {
			case r.Address == "" || len(r.Address) > MaxAddressLen:
				return fmt.Errorf("%w: %s: address of %d bytes, want 1 to %d", ErrInvalid, rs.what, len(r.Address), MaxAddressLen)
			case len(r.Orgs) == 0 || len(r.Orgs) > MaxOrgsPerRule:
				return fmt.Errorf("%w: %s of %q: %d organisations, want 1 to %d", ErrInvalid, rs.what, r.Address, len(r.Orgs), MaxOrgsPerRule)
			}
			for _, o := range r.Orgs {
				if o.IsZero() {
					return fmt.Errorf("%w: %s of %q: the zero organisation ID names no organisation", ErrInvalid, rs.what, r.Address)
				}
			}
		}
	}
	return nil
}

// IsZero reports whether p says nothing: such a site announces no policy.
func (p *Policy) IsZero() bool {
	return p.Cert == nil && len(p.Exports) == 0 && len(p.Imports) == 0
}

// Member is the site's side of the decision: the organisation of its
// certificate when that certifies site, else none (err says why).
func (p *Policy) Member(site siteid.ID) (Member, error) {
	m := Member{Exports: p.Exports, Imports: p.Imports}
	if p.Cert == nil {
		return m, nil
	}
	if err := p.Cert.Verify(site); err != nil {
		return m, err
	}
	m.Org = p.Cert.Org()
	return m, nil
}

// MarshalBinary encodes p (spec.md, beside the code:
// version, a certificate flag and certificate, then exports and imports,
// each a count of rules of an address and organisation IDs).
func (p *Policy) MarshalBinary() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := []byte{policyVersion, 0}
	if p.Cert != nil {
		b[1] = 1
		b = append(append(append(b, p.Cert.OrgKey[:]...), p.Cert.Site[:]...), p.Cert.Sig[:]...)
	}
	for _, rules := range [][]Rule{p.Exports, p.Imports} {
		b = binary.AppendUvarint(b, uint64(len(rules)))
		for _, r := range rules {
			b = binary.AppendUvarint(b, uint64(len(r.Address)))
			b = append(b, r.Address...)
			b = append(b, byte(len(r.Orgs)))
			for _, o := range r.Orgs {
				b = append(b, o[:]...)
			}
		}
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary made; every count is checked
// against its bound and the bytes left before anything is allocated.
func (p *Policy) UnmarshalBinary(b []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(b) < 2 || b[0] != policyVersion || b[1] > 1 {
		return bad("not a version %d policy", policyVersion)
	}
	out := Policy{}
	hasCert := b[1] == 1
	b = b[2:]
	if hasCert {
		if len(b) < certSize {
			return bad("truncated certificate")
		}
		c := &Cert{}
		copy(c.OrgKey[:], b)
		copy(c.Site[:], b[32:])
		copy(c.Sig[:], b[48:])
		out.Cert, b = c, b[certSize:]
	}
	for i, dst := range []*[]Rule{&out.Exports, &out.Imports} {
		n, k := uvarint(b)
		// A rule takes at least 1 (address length) + 1 + 1 + 16 bytes.
		if k <= 0 || n > MaxRules || n*19 > uint64(len(b)-k) {
			return bad("rule count of list %d", i)
		}
		b = b[k:]
		if n > 0 {
			*dst = make([]Rule, n)
		}
		for j := range *dst {
			l, k := uvarint(b)
			if k <= 0 || l == 0 || l > MaxAddressLen || l > uint64(len(b)-k) {
				return bad("address of rule %d", j)
			}
			r := &(*dst)[j]
			r.Address, b = string(b[k:k+int(l)]), b[k+int(l):]
			if len(b) < 1 {
				return bad("truncated rule %d", j)
			}
			no := int(b[0])
			if no == 0 || no > MaxOrgsPerRule || len(b)-1 < no*16 {
				return bad("organisations of rule %d", j)
			}
			r.Orgs, b = make([]OrgID, no), b[1:]
			for o := range r.Orgs {
				copy(r.Orgs[o][:], b)
				b = b[16:]
			}
		}
	}
	if len(b) != 0 {
		return bad("%d trailing bytes", len(b))
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*p = out
	return nil
}

// uvarint reads a varint in its shortest form, the only one MarshalBinary
// writes, so that one policy has one encoding; k <= 0 when there is none.
func uvarint(b []byte) (n uint64, k int) {
	n, k = binary.Uvarint(b)
	if k > 0 && k != len(binary.AppendUvarint(nil, n)) {
		return 0, -1
	}
	return n, k
}

// certPEMType is the PEM block of a certificate file (`weft org certify`).
const certPEMType = "WEFT ORGANISATION CERTIFICATE"

// PEM is the certificate as the file `weft org certify` writes.
func (c *Cert) PEM() []byte {
	b := append(append(append(make([]byte, 0, certSize), c.OrgKey[:]...), c.Site[:]...), c.Sig[:]...)
	return pem.EncodeToMemory(&pem.Block{Type: certPEMType, Bytes: b})
}

// ParseCertPEM reads a certificate file; it does not verify it.
func ParseCertPEM(b []byte) (*Cert, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != certPEMType || len(blk.Bytes) != certSize {
		return nil, fmt.Errorf("%w: not a %s PEM block of %d bytes (made by `weft org certify`)", ErrBadCert, certPEMType, certSize)
	}
	c := &Cert{}
	copy(c.OrgKey[:], blk.Bytes)
	copy(c.Site[:], blk.Bytes[32:])
	copy(c.Sig[:], blk.Bytes[48:])
	return c, nil
}
