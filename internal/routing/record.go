package routing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"weft.dev/weft/internal/opkey"
	"weft.dev/weft/internal/siteid"
)

// Bounds on a record. A record arrives from another site, possibly a broken
// or hostile one, and is kept in memory by every site of the network, so
// each part is capped before anything is allocated for it.
const (
	MaxNameLen     = 253     // bytes of Record.Name (a DNS name fits)
	MaxAddressLen  = 253     // bytes of Connector.Address
	MaxProtocolLen = 16      // bytes of Connector.Protocol
	MaxInterestLen = 253     // bytes of each interest pattern
	MaxLinks       = 1024    // links per record
	MaxConnectors  = 4096    // connectors per record
	MaxInterests   = 4096    // interests per record
	MaxRecordSize  = 1 << 20 // bytes of the encoded record
	MaxPolicyLen   = 1 << 16 // bytes of Record.Policy
	// MaxExtensions bounds the extensions of a record, known or not.
	MaxExtensions = 32
	// MaxExtensionLen bounds the value of one extension.
	MaxExtensionLen  = 1 << 16
	recordVersion    = 3
	minExtensionSize = 2          // type and length
	minLinkSize      = 16 + 1 + 1 // peer, cost, rtt
	minConnectorSize = 2 + 1 + 1  // address (>= 1 byte), protocol, capacity
	minInterestSize  = 2          // length and >= 1 byte
)

// ErrInvalidRecord is returned (wrapped, with what is wrong) by
// [Record.Validate], [Record.MarshalBinary] and [Record.UnmarshalBinary].
var ErrInvalidRecord = errors.New("routing: invalid record")

// Errors of [Record.Verify], one per reason a record is refused; sites
// count refusals by them.
var (
	// ErrUnsigned: the record carries no key or no signature.
	ErrUnsigned = errors.New("routing: record is not signed")
	// ErrKeyMismatch: the record's key does not hash to the site ID it
	// names, so it speaks for a site it cannot be (a forgery).
	ErrKeyMismatch = errors.New("routing: record key does not match its site ID")
	// ErrBadSignature: the signature does not cover the record as it is
	// (altered in transit, or forged).
	ErrBadSignature = errors.New("routing: bad record signature")
	// ErrBadCert: the record is signed by an operational key whose
	// certificate does not chain to the site's identity key, or is
	// expired.
	ErrBadCert = errors.New("routing: record's operational key certificate does not check")
)

// Extension types of the record's extension area (spec.md). Types this
// version does not know are kept in [Record.Extensions] and signed with
// the rest, so a record made by a newer site verifies here.
const (
	ExtSealKey     = 1 // Record.SealKey
	ExtPolicy      = 2 // Record.Policy
	ExtCert        = 3 // Record.Cert
	ExtPrevSealKey = 4 // Record.PrevSealKey
	ExtFeatures    = 5 // Record.Features
	maxKnownExt    = ExtFeatures
)

// Feature bits of [Record.Features]: what a site's software does that a
// site built before it does not, so that its peers use it only when the
// site says so.
const (
	// FeatureDirectStreams: the site accepts a service stream with no
	// end-to-end seal from a link peer that is the stream's origin
	// (internal/seal/spec.md, "Direct streams").
	FeatureDirectStreams uint64 = 1 << 0
)

// Extension is one entry of a record's extension area that this version
// does not know.
type Extension struct {
	Type  uint64
	Value []byte
}

// signLabel separates record signatures from every other statement a
// site's identity key signs.
const signLabel = "weft site record v3\x00"

// Link is one link a site advertises.
type Link struct {
	Peer siteid.ID
	// Cost is what the advertising site charges for the hop towards Peer.
	// Path computation counts a cost of 0 as 1, so every hop costs
	// something and equal-cost ties have a single well-defined answer.
	Cost uint32
	// RTT is the last measured round-trip time; informational, routing
	// does not use it.
	RTT time.Duration
}

// Connector says that Address is served at the advertising site.
type Connector struct {
	Address  string
	Protocol string // e.g. "tcp" or "http"; may be empty
	Capacity uint32
}

// Record is a site's versioned self-description, flooded over links. A
// Record handed to or returned by this package shares its slices; callers
// must treat them as read-only.
//
// A record is self-certifying: Key is the key that signed it, either the
// origin's Ed25519 identity key (Site is [siteid.FromKey] of it) or an
// operational key that Cert, made by the identity key, certifies (package
// opkey). Sig signs the canonical encoding of every other field, Seq
// included, so no one but the origin can make, alter, withdraw or renumber
// it. Fields added later go in the extension area, which is signed too
// (see spec.md).
type Record struct {
	Site siteid.ID
	Key  [ed25519.PublicKeySize]byte
	Name string
	// Seq is the record's version: a higher one supersedes a lower one.
	Seq        uint64
	Links      []Link
	Connectors []Connector
	// Interests are event topic or queue patterns; the router only carries
	// them.
	Interests []string
	// SealKey is the site's static X25519 public key for end-to-end
	// stream encryption (internal/seal); zero when the site has none. The
	// router only carries it; the signature authenticates it.
	SealKey [SealKeyLen]byte
	// PrevSealKey is the seal key SealKey replaced, still accepted from
	// this site while its handshakes move to the new one; zero when none.
	PrevSealKey [SealKeyLen]byte
	// Features are the Feature bits the site sets, unknown ones included
	// (kept, as they are signed); zero for a site built before them.
	Features uint64
	// Policy is the site's organisation certificate and address policy,
	// encoded by package policy; the router only carries it, signed with
	// the rest. Empty for a site without one.
	Policy []byte
	// Cert is the certificate of the operational key Key (opkey.Cert
	// encoded), empty when the identity key signed the record itself.
	Cert []byte
	// Extensions are the extensions this version does not know, in
	// ascending type order, kept so the signature still covers them.
	Extensions []Extension
	// Sig is the origin's signature, made by [Record.Sign].
	Sig [ed25519.SignatureSize]byte
}

// Sign sets the record's key and signs it with the origin's identity key,
// which must be the key of r.Site, with no certificate: sign last, after
// every other field is set. Ed25519 is deterministic, so the same record
// always gets the same signature.
func (r *Record) Sign(key ed25519.PrivateKey) {
	r.Cert = nil
	copy(r.Key[:], key.Public().(ed25519.PublicKey))
	copy(r.Sig[:], ed25519.Sign(key, r.signedMessage()))
}

// SignOp signs the record with an operational key of r.Site and carries
// its certificate.
func (r *Record) SignOp(op *opkey.Signer) {
	r.Cert = op.CertBytes()
	copy(r.Key[:], op.Public())
	copy(r.Sig[:], op.Sign(r.signedMessage()))
}

// Verify checks that the record is signed, that its key is the key of the
// site it names (or certified by it, valid at now) and that the signature
// covers it as it is. It returns [ErrUnsigned], [ErrKeyMismatch],
// [ErrBadCert] or [ErrBadSignature] (wrapped) if not. Verification costs
// an Ed25519 check or two; callers that see the same record from several
// neighbours should remember the verdict.
func (r *Record) Verify(now time.Time) error {
	var zk [ed25519.PublicKeySize]byte
	var zs [ed25519.SignatureSize]byte
	switch {
	case r.Key == zk || r.Sig == zs:
		return fmt.Errorf("%w: site %s", ErrUnsigned, r.Site)
	case len(r.Cert) == 0 && siteid.FromKey(r.Key[:]) != r.Site:
		return fmt.Errorf("%w: record names %s, key is of %s", ErrKeyMismatch, r.Site, siteid.FromKey(r.Key[:]))
	case len(r.Cert) > 0:
		var c opkey.Cert
		if err := c.UnmarshalBinary(r.Cert); err != nil {
			return fmt.Errorf("%w: %w", ErrBadCert, err)
		}
		if c.Key != r.Key {
			return fmt.Errorf("%w: site %s: the certificate is of another key than the one that signed", ErrKeyMismatch, r.Site)
		}
		if err := c.Verify(r.Site, now); err != nil {
			return fmt.Errorf("%w: %w", ErrBadCert, err)
		}
	}
	switch {
	case !ed25519.Verify(r.Key[:], r.signedMessage(), r.Sig[:]):
		return fmt.Errorf("%w: site %s, seq %d", ErrBadSignature, r.Site, r.Seq)
	}
	return nil
}

// signedMessage is what the signature covers: a label, then the canonical
// encoding of every field before the signature. Signing the re-encoded
// fields rather than received bytes makes a record's signature valid in
// whatever form a neighbour forwards it.
func (r *Record) signedMessage() []byte {
	b := make([]byte, 0, len(signLabel)+r.encodedSize())
	b = append(b, signLabel...)
	return r.appendBody(b)
}

// SealKeyLen is the length of [Record.SealKey].
const SealKeyLen = 32

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRecord, fmt.Sprintf(format, args...))
}

// Validate reports the first way in which r breaks the bounds and rules of
// the wire format, so a site can check its own configuration before
// handing it to [Router.SetLocal].
func (r *Record) Validate() error {
	if r.Site.IsZero() {
		return invalid("site ID is zero")
	}
	if err := checkString("name", r.Name, MaxNameLen, false); err != nil {
		return err
	}
	if len(r.Links) > MaxLinks {
		return invalid("%d links, limit %d", len(r.Links), MaxLinks)
	}
	if len(r.Connectors) > MaxConnectors {
		return invalid("%d connectors, limit %d", len(r.Connectors), MaxConnectors)
	}
	if len(r.Interests) > MaxInterests {
		return invalid("%d interests, limit %d", len(r.Interests), MaxInterests)
	}
	for i, l := range r.Links {
		switch {
		case l.Peer.IsZero():
			return invalid("link %d: peer ID is zero", i)
		case l.Peer == r.Site:
			return invalid("link %d: peer is the site itself", i)
		case l.RTT < 0:
			return invalid("link %d: negative RTT %v", i, l.RTT)
		}
	}
	if i, j, ok := duplicatePeer(r.Links); ok {
		return invalid("links %d and %d: peer %s listed twice", i, j, r.Links[i].Peer)
	}
	for i, c := range r.Connectors {
		if err := checkString(fmt.Sprintf("connector %d: address", i), c.Address, MaxAddressLen, true); err != nil {
			return err
		}
		if err := checkString(fmt.Sprintf("connector %d: protocol", i), c.Protocol, MaxProtocolLen, false); err != nil {
			return err
		}
	}
	for i, s := range r.Interests {
		if err := checkString(fmt.Sprintf("interest %d: pattern", i), s, MaxInterestLen, true); err != nil {
			return err
		}
	}
	if len(r.Policy) > MaxPolicyLen {
		return invalid("policy is %d bytes, limit %d", len(r.Policy), MaxPolicyLen)
	}
	if len(r.Cert) > 0 {
		var c opkey.Cert
		if err := c.UnmarshalBinary(r.Cert); err != nil {
			return invalid("%v", err)
		}
	}
	if r.PrevSealKey != ([SealKeyLen]byte{}) && r.SealKey == ([SealKeyLen]byte{}) {
		return invalid("a previous seal key without a seal key")
	}
	if n := len(r.Extensions) + r.knownExtensions(); n > MaxExtensions {
		return invalid("%d extensions, limit %d", n, MaxExtensions)
	}
	last := uint64(maxKnownExt)
	for i, e := range r.Extensions {
		switch {
		case e.Type <= last:
			return invalid("extension %d: type %d not above %d (known types and ascending order)", i, e.Type, last)
		case len(e.Value) > MaxExtensionLen:
			return invalid("extension %d: %d bytes, limit %d", i, len(e.Value), MaxExtensionLen)
		}
		last = e.Type
	}
	if n := r.encodedSize(); n > MaxRecordSize {
		return invalid("encoded size %d bytes, limit %d", n, MaxRecordSize)
	}
	return nil
}

func checkString(what, s string, limit int, nonEmpty bool) error {
	switch {
	case len(s) > limit:
		return invalid("%s is %d bytes, limit %d", what, len(s), limit)
	case nonEmpty && s == "":
		return invalid("%s is empty", what)
	case !utf8.ValidString(s):
		return invalid("%s is not valid UTF-8", what)
	}
	return nil
}

// duplicatePeer finds two links to the same peer. Records usually have a
// handful of links, where the quadratic scan beats building a map.
func duplicatePeer(links []Link) (int, int, bool) {
	if len(links) <= 32 {
		for i := range links {
			for j := i + 1; j < len(links); j++ {
				if links[i].Peer == links[j].Peer {
					return i, j, true
				}
			}
		}
		return 0, 0, false
	}
	seen := make(map[siteid.ID]int, len(links))
	for j, l := range links {
		if i, ok := seen[l.Peer]; ok {
			return i, j, true
		}
		seen[l.Peer] = j
	}
	return 0, 0, false
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func (r *Record) encodedSize() int {
	n := 1 + 16 + len(r.Key) + uvarintLen(r.Seq) + stringLen(r.Name) + len(r.Sig)
	n += uvarintLen(uint64(len(r.Links)))
	for _, l := range r.Links {
		n += 16 + uvarintLen(uint64(l.Cost)) + uvarintLen(uint64(max(l.RTT, 0)))
	}
	n += uvarintLen(uint64(len(r.Connectors)))
	for _, c := range r.Connectors {
		n += stringLen(c.Address) + stringLen(c.Protocol) + uvarintLen(uint64(c.Capacity))
	}
	n += uvarintLen(uint64(len(r.Interests)))
	for _, s := range r.Interests {
		n += stringLen(s)
	}
	n += uvarintLen(uint64(len(r.Extensions) + r.knownExtensions()))
	r.eachExtension(func(typ uint64, v []byte) {
		n += uvarintLen(typ) + uvarintLen(uint64(len(v))) + len(v)
	})
	return n
}

// knownExtensions counts the extensions the known fields make.
func (r *Record) knownExtensions() int {
	n := 0
	r.eachKnown(func(uint64, []byte) { n++ })
	return n
}

// eachKnown calls f with the type and value of each known field that is
// set, in ascending type order. An empty field has no extension.
func (r *Record) eachKnown(f func(typ uint64, v []byte)) {
	if r.SealKey != ([SealKeyLen]byte{}) {
		f(ExtSealKey, r.SealKey[:])
	}
	if len(r.Policy) > 0 {
		f(ExtPolicy, r.Policy)
	}
	if len(r.Cert) > 0 {
		f(ExtCert, r.Cert)
	}
	if r.PrevSealKey != ([SealKeyLen]byte{}) {
		f(ExtPrevSealKey, r.PrevSealKey[:])
	}
	if r.Features != 0 {
		var b [binary.MaxVarintLen64]byte
		f(ExtFeatures, b[:binary.PutUvarint(b[:], r.Features)])
	}
}

// eachExtension calls f for every extension in encoding order: the known
// ones, then the others (all of whose types are higher).
func (r *Record) eachExtension(f func(typ uint64, v []byte)) {
	r.eachKnown(f)
	for _, e := range r.Extensions {
		f(e.Type, e.Value)
	}
}

// MarshalBinary encodes r in the format described in spec.md. It refuses a
// record that [Record.Validate] refuses, so a site never sends what its
// peers would reject.
func (r *Record) MarshalBinary() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r.appendTo(make([]byte, 0, r.encodedSize())), nil
}

// appendTo encodes r without checking it.
func (r *Record) appendTo(b []byte) []byte {
	return append(r.appendBody(b), r.Sig[:]...)
}

// appendBody encodes every field but the signature: what the signature
// covers.
func (r *Record) appendBody(b []byte) []byte {
	b = append(b, recordVersion)
	b = append(b, r.Site[:]...)
	b = append(b, r.Key[:]...)
	b = binary.AppendUvarint(b, r.Seq)
	b = appendString(b, r.Name)
	b = binary.AppendUvarint(b, uint64(len(r.Links)))
	for _, l := range r.Links {
		b = append(b, l.Peer[:]...)
		b = binary.AppendUvarint(b, uint64(l.Cost))
		b = binary.AppendUvarint(b, uint64(l.RTT))
	}
	b = binary.AppendUvarint(b, uint64(len(r.Connectors)))
	for _, c := range r.Connectors {
		b = appendString(b, c.Address)
		b = appendString(b, c.Protocol)
		b = binary.AppendUvarint(b, uint64(c.Capacity))
	}
	b = binary.AppendUvarint(b, uint64(len(r.Interests)))
	for _, s := range r.Interests {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Extensions)+r.knownExtensions()))
	r.eachExtension(func(typ uint64, v []byte) {
		b = binary.AppendUvarint(b, typ)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	})
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary decodes a record made by [Record.MarshalBinary]. Every
// count and length is checked against its bound before memory is set aside
// for it, and the result must pass [Record.Validate]. On error r is left
// unchanged.
func (r *Record) UnmarshalBinary(b []byte) error {
	if len(b) > MaxRecordSize {
		return invalid("encoded size %d bytes, limit %d", len(b), MaxRecordSize)
	}
	d := decoder{b: b}
	var out Record
	if v := d.byte("version"); d.err == nil && v != recordVersion {
		return invalid("version %d, want %d", v, recordVersion)
	}
	out.Site = d.id("site ID")
	d.fixed(out.Key[:], "key")
	out.Seq = d.uvarint("seq", math.MaxUint64)
	out.Name = d.string("name", MaxNameLen)
	if n := d.count("links", MaxLinks, minLinkSize); n > 0 {
		out.Links = make([]Link, n)
		for i := range out.Links {
			l := &out.Links[i]
			d.at("link", i)
			l.Peer = d.id("peer")
			l.Cost = uint32(d.uvarint("cost", math.MaxUint32))
			l.RTT = time.Duration(d.uvarint("RTT", math.MaxInt64))
		}
	}
	d.at("", 0)
	if n := d.count("connectors", MaxConnectors, minConnectorSize); n > 0 {
		out.Connectors = make([]Connector, n)
		for i := range out.Connectors {
			c := &out.Connectors[i]
			d.at("connector", i)
			c.Address = d.string("address", MaxAddressLen)
			c.Protocol = d.string("protocol", MaxProtocolLen)
			c.Capacity = uint32(d.uvarint("capacity", math.MaxUint32))
		}
	}
	d.at("", 0)
	if n := d.count("interests", MaxInterests, minInterestSize); n > 0 {
		out.Interests = make([]string, n)
		for i := range out.Interests {
			d.at("interest", i)
			out.Interests[i] = d.string("pattern", MaxInterestLen)
		}
	}
	d.at("", 0)
	d.extensions(&out)
	d.fixed(out.Sig[:], "signature")
	if d.err != nil {
		return d.err
	}
	if len(d.b) > 0 {
		return invalid("%d trailing bytes after the signature", len(d.b))
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*r = out
	return nil
}

// extensions decodes the extension area into out: the known types into
// their fields, the others kept as they are. Types must ascend, so each
// appears once and the encoding is canonical.
func (d *decoder) extensions(out *Record) {
	n := d.count("extensions", MaxExtensions, minExtensionSize)
	var last uint64
	for i := range n {
		d.at("extension", i)
		typ := d.uvarint("type", math.MaxUint64)
		v := d.bytes("value", MaxExtensionLen)
		if d.err != nil {
			return
		}
		if i > 0 && typ <= last {
			d.fail("type %d after %d: types must ascend", typ, last)
			return
		}
		last = typ
		switch typ {
		case ExtSealKey, ExtPrevSealKey:
			if len(v) != SealKeyLen || bytes.Equal(v, make([]byte, SealKeyLen)) {
				d.fail("seal key of %d bytes, want %d not all zero", len(v), SealKeyLen)
				return
			}
			if typ == ExtSealKey {
				copy(out.SealKey[:], v)
			} else {
				copy(out.PrevSealKey[:], v)
			}
		case ExtPolicy:
			if len(v) == 0 || len(v) > MaxPolicyLen {
				d.fail("policy of %d bytes, want 1 to %d", len(v), MaxPolicyLen)
				return
			}
			out.Policy = v
		case ExtCert:
			if len(v) == 0 {
				d.fail("empty operational key certificate")
				return
			}
			out.Cert = v
		case ExtFeatures:
			// Canonical and whole, so that re-encoding gives the bytes
			// the origin signed.
			f, n := binary.Uvarint(v)
			if n != len(v) || f == 0 || n != uvarintLen(f) {
				d.fail("features of %d bytes are not one canonical non-zero varint", len(v))
				return
			}
			out.Features = f
		default:
			if typ <= maxKnownExt {
				d.fail("extension type %d is reserved", typ)
				return
			}
			out.Extensions = append(out.Extensions, Extension{Type: typ, Value: v})
		}
	}
	d.at("", 0)
}

// bytes reads a length-prefixed byte string, sharing the input.
func (d *decoder) bytes(what string, limit int) []byte {
	n := d.uvarint(what+" length", uint64(limit))
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("truncated reading %s (%d bytes, %d left)", what, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b, d.off = d.b[n:], d.off+int(n)
	return v
}

// decoder reads fields until the first error, which it keeps; later reads
// return zero values so the caller checks once at the end. The item being
// read (kind and index) is kept apart from the field name so error text is
// only formatted when there is an error.
type decoder struct {
	b    []byte
	off  int
	err  error
	kind string // "link", "connector", "interest" or "" for top-level fields
	idx  int
}

func (d *decoder) at(kind string, idx int) { d.kind, d.idx = kind, idx }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		msg := fmt.Sprintf(format, args...)
		if d.kind != "" {
			msg = fmt.Sprintf("%s %d: %s", d.kind, d.idx, msg)
		}
		d.err = invalid("at byte %d: %s", d.off, msg)
	}
	d.b = nil
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated reading %s", what)
		return 0
	}
	v := d.b[0]
	d.b, d.off = d.b[1:], d.off+1
	return v
}

func (d *decoder) id(what string) siteid.ID {
	var id siteid.ID
	d.fixed(id[:], what)
	return id
}

// fixed fills dst, a field of fixed size.
func (d *decoder) fixed(dst []byte, what string) {
	if d.err != nil {
		return
	}
	if len(d.b) < len(dst) {
		d.fail("truncated reading %s", what)
		return
	}
	copy(dst, d.b)
	d.b, d.off = d.b[len(dst):], d.off+len(dst)
}

func (d *decoder) uvarint(what string, limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.fail("truncated reading %s", what)
		return 0
	case n < 0:
		d.fail("%s overflows 64 bits", what)
		return 0
	case v > limit:
		d.fail("%s is %d, limit %d", what, v, limit)
		return 0
	}
	d.b, d.off = d.b[n:], d.off+n
	return v
}

func (d *decoder) string(what string, limit int) string {
	n := d.uvarint(what+" length", math.MaxUint64)
	if d.err != nil {
		return ""
	}
	if n > uint64(limit) {
		d.fail("%s is %d bytes, limit %d", what, n, limit)
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("truncated reading %s (%d bytes, %d left)", what, n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b, d.off = d.b[n:], d.off+int(n)
	return s
}

// count reads a number of items and refuses one that could not fit in the
// bytes left, so a tiny input cannot make us allocate a large slice.
func (d *decoder) count(what string, limit, minSize int) int {
	n := d.uvarint("number of "+what, math.MaxUint64)
	if d.err != nil {
		return 0
	}
	if n > uint64(limit) {
		d.fail("%d %s, limit %d", n, what, limit)
		return 0
	}
	if n*uint64(minSize) > uint64(len(d.b)) {
		d.fail("truncated: %d %s need at least %d bytes, %d left", n, what, n*uint64(minSize), len(d.b))
		return 0
	}
	return int(n)
}
