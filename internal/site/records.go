package site

import (
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"weft.dev/weft/internal/routing"
)

// Reasons a site record is refused, the label of
// weft_records_rejected_total.
const (
	rejectMalformed    = "malformed"     // does not decode: the neighbour is broken; the link closes
	rejectUnsigned     = "unsigned"      // no key or no signature
	rejectKeyMismatch  = "key-mismatch"  // the key is not the named site's: forged
	rejectBadSignature = "bad-signature" // the signature does not cover it: altered or forged
	rejectStale        = "stale"         // older than the record held: replayed, or a late copy
	rejectBadCert      = "bad-cert"      // the operational key's certificate does not check or expired
	rejectRevokedKey   = "revoked-key"   // signed by a revoked operational key
)

// rejectReason is the label for an error of routing's decoder or Verify.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, routing.ErrUnsigned):
		return rejectUnsigned
	case errors.Is(err, routing.ErrKeyMismatch):
		return rejectKeyMismatch
	case errors.Is(err, routing.ErrBadSignature):
		return rejectBadSignature
	case errors.Is(err, routing.ErrBadCert):
		return rejectBadCert
	case errors.Is(err, errRevokedKey):
		return rejectRevokedKey
	}
	return rejectMalformed
}

// maxVerdicts bounds the verdicts remembered: a few per site of a large
// network, so a flood of one record through many links is verified once.
const maxVerdicts = 16384

// recordChecker decodes and verifies the site records that arrive on
// links, remembering each verdict by the SHA-256 of the record's bytes, so
// that the copies of one record that reach a site over each of its links,
// or a hostile peer repeating one forgery, cost one Ed25519 check. It is
// safe for concurrent use; mu is a leaf lock held only for map operations.
type recordChecker struct {
	mu       sync.Mutex
	verdicts map[[sha256.Size]byte]error // nil: the record verified
	order    [][sha256.Size]byte         // oldest first, for eviction
}

func newRecordChecker() *recordChecker {
	return &recordChecker{verdicts: map[[sha256.Size]byte]error{}}
}

// check decodes b and verifies its signature. A refused record comes back
// with the error and whether this exact record was refused before, so that
// the caller logs each forgery once however often it is repeated.
func (c *recordChecker) check(b []byte) (rec routing.Record, err error, repeated bool) {
	sum := sha256.Sum256(b)
	c.mu.Lock()
	verdict, known := c.verdicts[sum]
	c.mu.Unlock()
	if known && verdict != nil {
		return routing.Record{}, verdict, true
	}
	if err := rec.UnmarshalBinary(b); err != nil {
		// Not remembered: a malformed record closes its link.
		return routing.Record{}, err, false
	}
	if known {
		return rec, nil, false
	}
	verdict = rec.Verify(time.Now())
	c.mu.Lock()
	if _, ok := c.verdicts[sum]; !ok {
		c.verdicts[sum] = verdict
		c.order = append(c.order, sum)
		for len(c.order) > maxVerdicts {
			delete(c.verdicts, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
	if verdict != nil {
		return routing.Record{}, verdict, false
	}
	return rec, nil, false
}

// errRevokedKey: a record that verifies, signed by an operational key its
// site revoked.
var errRevokedKey = errors.New("record signed by a revoked operational key")
