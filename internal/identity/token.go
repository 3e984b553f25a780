package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"weft.dev/weft/internal/siteid"
)

// Token redemption failures. Each says what went wrong and what the user
// should do, because the redeemer's CLI prints them as they are (they travel
// as codes, see [ErrorCode] and [ResponseError]).
var (
	// ErrTokenUnknown: the issuer has no token with this ID (never issued
	// there, or purged long after expiry).
	ErrTokenUnknown = errors.New("token unknown to the issuing site (never issued there, or purged after expiry); issue a new token with `weft token issue`")
	// ErrTokenExpired: the token's expiry has passed.
	ErrTokenExpired = errors.New("token expired; issue a new token with `weft token issue` (see --expires)")
	// ErrTokenUsedUp: other sites have spent all of the token's uses.
	ErrTokenUsedUp = errors.New("token used up: all its redemptions are spent; issue a new token with `weft token issue` (see --uses)")
	// ErrTokenAlreadyRedeemed: this same redeemer site already redeemed the
	// token, so this is a replay; its link from that redemption exists.
	ErrTokenAlreadyRedeemed = errors.New("token already redeemed by this site (see `weft link list`); to link again, issue a new token with `weft token issue`")
	// ErrTokenBadSecret: the ID is known but the secret does not match.
	ErrTokenBadSecret = errors.New("token secret does not match (token file damaged or altered); issue a new token with `weft token issue`")
)

// Limits on issuance; beyond them a token is more likely a mistake than
// intended.
const (
	MaxTokenUses = 1000
	// ExpiredRetention is how long an expired token's record is kept, so a
	// late redeemer is told "expired" rather than "unknown".
	ExpiredRetention = 24 * time.Hour
)

// Token is what `weft token issue` hands out; the site wraps it into an
// AccessToken resource. Secret is the only copy of the plaintext secret.
type Token struct {
	ID         string
	Secret     string
	Expires    time.Time
	Uses       int
	IssuerID   siteid.ID
	IssuerName string
	Addresses  []string
	CAPEM      []byte
}

// IssuerPool checks the token's CA certificate and returns a pool holding
// it, for [ClientTLSConfig]. It refuses a CA that belongs to a site other
// than IssuerID, which catches tokens stitched together from two issuers.
func (t *Token) IssuerPool() (*x509.CertPool, error) {
	if t.ID == "" || t.Secret == "" || t.IssuerID.IsZero() {
		return nil, errors.New("identity: token lacks ID, secret or issuer ID")
	}
	if len(t.Addresses) == 0 {
		return nil, errors.New("identity: token has no issuer addresses")
	}
	ca, err := parseCertPEM(t.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: token CA: %w", err)
	}
	if !ca.IsCA {
		return nil, errors.New("identity: token CA certificate is not a CA")
	}
	id, err := PeerSiteID(ca)
	if err != nil {
		return nil, fmt.Errorf("identity: token CA: %w", err)
	}
	if id != t.IssuerID {
		return nil, fmt.Errorf("%w: token CA belongs to %s, token names %s", ErrWrongSite, id, t.IssuerID)
	}
	p := x509.NewCertPool()
	p.AddCert(ca)
	return p, nil
}

// TokenStore is the issuer's bookkeeping of tokens it has handed out. It
// keeps only the SHA-256 of each secret. The zero value is ready to use; it
// is safe for concurrent use and must not be copied. Persist it with
// json.Marshal (which takes the lock) and restore with json.Unmarshal.
type TokenStore struct {
	mu     sync.Mutex // guards tokens
	tokens map[string]*tokenRecord
}

type tokenRecord struct {
	hash      [sha256.Size]byte
	expires   time.Time
	uses      int
	redeemers []siteid.ID // in redemption order; len(redeemers) <= uses
}

// TokenInfo describes an outstanding token, without its secret.
type TokenInfo struct {
	ID       string      `json:"id"`
	Expires  time.Time   `json:"expires"`
	Uses     int         `json:"uses"`
	Redeemed []siteid.ID `json:"redeemed"`
}

// Issue records a new token valid from now for ttl with the given number of
// uses and returns its ID, its 256-bit secret (base64url) and its expiry.
// The secret is not kept: the caller hands it out and forgets it.
func (s *TokenStore) Issue(now time.Time, ttl time.Duration, uses int) (id, secret string, expires time.Time, err error) {
	if ttl <= 0 {
		return "", "", time.Time{}, fmt.Errorf("identity: token lifetime %v must be positive", ttl)
	}
	if uses < 1 || uses > MaxTokenUses {
		return "", "", time.Time{}, fmt.Errorf("identity: token uses %d must be within 1..%d", uses, MaxTokenUses)
	}
	var sec [32]byte
	if _, err := rand.Read(sec[:]); err != nil {
		return "", "", time.Time{}, fmt.Errorf("identity: token secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(sec[:])
	expires = now.Add(ttl)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked(now)
	if s.tokens == nil {
		s.tokens = make(map[string]*tokenRecord)
	}
	for {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", "", time.Time{}, fmt.Errorf("identity: token ID: %w", err)
		}
		id = hex.EncodeToString(b[:])
		if _, dup := s.tokens[id]; !dup {
			break
		}
	}
	s.tokens[id] = &tokenRecord{hash: hashSecret(secret), expires: expires, uses: uses}
	return id, secret, expires, nil
}

// Redeem spends one use of token id on behalf of redeemer, or says with one
// of the ErrToken* errors why it cannot. Checks run in this order: unknown,
// bad secret, already redeemed by this redeemer, expired, used up; so a
// replay is reported as such even after expiry. A successful Redeem changes
// the store: the caller should persist it before answering the redeemer.
func (s *TokenStore) Redeem(now time.Time, id, secret string, redeemer siteid.ID) error {
	// Hash before taking the lock and compare hashes in constant time, so
	// neither timing nor lock hold time depend on how much of the secret
	// matched.
	h := hashSecret(secret)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked(now)
	rec, ok := s.tokens[id]
	if !ok {
		return ErrTokenUnknown
	}
	if subtle.ConstantTimeCompare(h[:], rec.hash[:]) != 1 {
		return ErrTokenBadSecret
	}
	if slices.Contains(rec.redeemers, redeemer) {
		return ErrTokenAlreadyRedeemed
	}
	if !now.Before(rec.expires) {
		return ErrTokenExpired
	}
	if len(rec.redeemers) >= rec.uses {
		return ErrTokenUsedUp
	}
	rec.redeemers = append(rec.redeemers, redeemer)
	return nil
}

// Revoke forgets token id, so later redemptions get [ErrTokenUnknown]. It
// reports whether the token existed. Links already made from it are not
// affected: revoke their certificates for that.
func (s *TokenStore) Revoke(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.tokens[id]
	delete(s.tokens, id)
	return ok
}

// Purge drops tokens that expired more than [ExpiredRetention] before now,
// and returns how many. Issue and Redeem purge too; call Purge before
// persisting to keep the file small.
func (s *TokenStore) Purge(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.purgeLocked(now)
}

// Purgeable says how many tokens Purge(now) would drop, without dropping
// them: a caller that persists the store saves only when there are some.
func (s *TokenStore) Purgeable(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, rec := range s.tokens {
		if purgeable(rec, now) {
			n++
		}
	}
	return n
}

func purgeable(rec *tokenRecord, now time.Time) bool {
	return rec.expires.Before(now.Add(-ExpiredRetention))
}

func (s *TokenStore) purgeLocked(now time.Time) int {
	n := 0
	for id, rec := range s.tokens {
		if purgeable(rec, now) {
			delete(s.tokens, id)
			n++
		}
	}
	return n
}

// Tokens lists the tokens held, ordered by expiry then ID.
func (s *TokenStore) Tokens() []TokenInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TokenInfo, 0, len(s.tokens))
	for id, rec := range s.tokens {
		out = append(out, TokenInfo{ID: id, Expires: rec.expires, Uses: rec.uses, Redeemed: slices.Clone(rec.redeemers)})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Expires.Equal(out[j].Expires) {
			return out[i].Expires.Before(out[j].Expires)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func hashSecret(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// tokenStoreJSON is the persisted form. The version lets a later format be
// told apart rather than silently misread.
type tokenStoreJSON struct {
	Version int               `json:"version"`
	Tokens  []tokenRecordJSON `json:"tokens"`
}

type tokenRecordJSON struct {
	ID           string      `json:"id"`
	SecretSHA256 string      `json:"secretSHA256"`
	Expires      time.Time   `json:"expires"`
	Uses         int         `json:"uses"`
	RedeemedBy   []siteid.ID `json:"redeemedBy"`
}

const tokenStoreVersion = 1

// MarshalJSON writes the store with secret hashes only, never secrets.
func (s *TokenStore) MarshalJSON() ([]byte, error) {
	s.mu.Lock()
	v := tokenStoreJSON{Version: tokenStoreVersion, Tokens: make([]tokenRecordJSON, 0, len(s.tokens))}
	for id, rec := range s.tokens {
		v.Tokens = append(v.Tokens, tokenRecordJSON{
			ID:           id,
			SecretSHA256: hex.EncodeToString(rec.hash[:]),
			Expires:      rec.expires,
			Uses:         rec.uses,
			RedeemedBy:   slices.Clone(rec.redeemers),
		})
	}
	s.mu.Unlock()
	// Sorted so that an unchanged store writes identical bytes.
	sort.Slice(v.Tokens, func(i, j int) bool { return v.Tokens[i].ID < v.Tokens[j].ID })
	return json.Marshal(v)
}

// UnmarshalJSON replaces the store's contents with those of b, after checking
// every record; on error the store is unchanged.
func (s *TokenStore) UnmarshalJSON(b []byte) error {
	var v tokenStoreJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("identity: token store: %w", err)
	}
	if v.Version != tokenStoreVersion {
		return fmt.Errorf("identity: token store: version %d, want %d", v.Version, tokenStoreVersion)
	}
	tokens := make(map[string]*tokenRecord, len(v.Tokens))
	for _, t := range v.Tokens {
		if t.ID == "" {
			return errors.New("identity: token store: token without ID")
		}
		if _, dup := tokens[t.ID]; dup {
			return fmt.Errorf("identity: token store: duplicate token %q", t.ID)
		}
		rec := &tokenRecord{expires: t.Expires, uses: t.Uses, redeemers: t.RedeemedBy}
		if len(t.SecretSHA256) != hex.EncodedLen(sha256.Size) {
			return fmt.Errorf("identity: token store: token %q: bad secret hash", t.ID)
		}
		if _, err := hex.Decode(rec.hash[:], []byte(t.SecretSHA256)); err != nil {
			return fmt.Errorf("identity: token store: token %q: bad secret hash", t.ID)
		}
		if t.Uses < 1 || len(t.RedeemedBy) > t.Uses {
			return fmt.Errorf("identity: token store: token %q: %d redemptions of %d uses", t.ID, len(t.RedeemedBy), t.Uses)
		}
		tokens[t.ID] = rec
	}
	s.mu.Lock()
	s.tokens = tokens
	s.mu.Unlock()
	return nil
}
