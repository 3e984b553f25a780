// Package events is weft's event mesh core: subject names and wildcard patterns,
// the interests a site advertises in its record, the multicast spanning tree an
// event follows across sites, and the frames that carry events over links. It
// is pure: the site package does the I/O.
package events

import (
	"errors"
	"fmt"
	"strings"
)

// MaxSubjectLen keeps an interest (a prefix and a pattern) within what a site
// record carries per interest (routing.MaxInterestLen).
const MaxSubjectLen = 240

// ErrBadSubject is returned (wrapped, with the reason) for a topic or queue name
// or a subscription pattern that breaks the rules.
var ErrBadSubject = errors.New("bad subject")

// ValidateSubject checks a topic or queue name as a publisher uses it:
// dot-separated tokens of letters, digits, '-' and '_', no wildcards.
func ValidateSubject(s string) error { return validate(s, false) }

// ValidatePattern checks a subscription pattern: a subject whose tokens may be
// '*' (exactly one token) and whose last token may be '>' (one or more tokens),
// as in NATS.
func ValidatePattern(p string) error { return validate(p, true) }

func validate(s string, wild bool) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrBadSubject)
	}
	if len(s) > MaxSubjectLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBadSubject, len(s), MaxSubjectLen)
	}
	// Token by token without splitting: every frame from another site is
	// checked.
	for rest, more := s, true; more; {
		var t string
		t, rest, more = strings.Cut(rest, ".")
		switch {
		case t == "":
			return fmt.Errorf("%w: %q has an empty token", ErrBadSubject, s)
		case wild && t == "*":
		case wild && t == ">":
			if more {
				return fmt.Errorf("%w: %q: '>' must be the last token", ErrBadSubject, s)
			}
		default:
			for _, c := range t {
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
					return fmt.Errorf("%w: %q: character %q is not allowed (letters, digits, '-', '_'%s)", ErrBadSubject, s, c, wildHint(wild))
				}
			}
		}
	}
	return nil
}

func wildHint(wild bool) string {
	if wild {
		return ", and '*' or '>' as whole tokens"
	}
	return "; wildcards only in subscriptions"
}

// Match reports whether subject (no wildcards) matches pattern.
func Match(pattern, subject string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch {
		case pt == ">":
			return true
		case pt != "*" && pt != st:
			return false
		case !pmore || !smore:
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

// Covers reports whether permission pattern have allows everything that
// pattern want can name: every subject that matches want matches have. For a
// subject without wildcards it is Match. A credential allowed "orders.>" may
// subscribe to "orders.*.created" but not to ">" or "orders" (which '>' does
// not match: it needs at least one token). Both must be valid patterns.
func Covers(have, want string) bool {
	for {
		ht, hrest, hmore := strings.Cut(have, ".")
		wt, wrest, wmore := strings.Cut(want, ".")
		switch {
		case ht == ">":
			return true // want has at least this one token left
		case wt == ">":
			return false // want reaches any depth; only '>' covers that
		case ht != "*" && ht != wt:
			return false // a literal covers only itself, never '*'
		case !hmore || !wmore:
			return hmore == wmore
		}
		have, want = hrest, wrest
	}
}

// Kind tells topics (multicast) from queues (anycast). Names of the two are
// separate spaces.
type Kind byte

// Kinds; the values are on the wire.
const (
	Topic Kind = 't'
	Queue Kind = 'q'
)

func (k Kind) String() string {
	if k == Queue {
		return "queue"
	}
	return "topic"
}

// Interest is what a site puts into its routing record for one local
// subscription: the kind, then the pattern ("t:orders.>", "q:jobs").
func Interest(k Kind, pattern string) string { return string(k) + ":" + pattern }

// ParseInterest splits an interest from a site record. Records come from other
// sites: anything malformed is reported as not ok and ignored by the caller, so
// a newer site can add interest forms.
func ParseInterest(s string) (k Kind, pattern string, ok bool) {
	if len(s) < 3 || s[1] != ':' || Kind(s[0]) != Topic && Kind(s[0]) != Queue {
		return 0, "", false
	}
	if ValidatePattern(s[2:]) != nil {
		return 0, "", false
	}
	return Kind(s[0]), s[2:], true
}
