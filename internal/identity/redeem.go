package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode"
	"unicode/utf8"

	"weft.dev/weft/internal/opkey"
	"weft.dev/weft/internal/siteid"
)

// Wire format of token redemption, inside a TLS connection with ALPN
// [ALPNRedeem]: the redeemer writes one [RedeemRequest], the issuer answers
// with one [RedeemResponse] and both close. Each message is a 4-byte
// big-endian length followed by that many bytes of JSON.
const (
	// MaxMessageSize bounds a message body, so a peer cannot make us buffer
	// more than this before we have checked anything.
	MaxMessageSize = 64 << 10

	maxNameLen    = 128
	maxAddrLen    = 261 // a 253-byte DNS name, brackets, colon and port
	maxAddrs      = 16
	maxTokenIDLen = 64
	maxSecretLen  = 128
	maxCSRLen     = 4 << 10 // a P-256 CSR is about 250 bytes
	maxCertPEMLen = 16 << 10
	maxMessageLen = 1 << 10
	maxCodeLen    = 32
)

// Response codes. The empty code means success.
const (
	CodeOK              = ""
	CodeExpired         = "expired"
	CodeUsedUp          = "used-up"
	CodeUnknown         = "unknown"
	CodeAlreadyRedeemed = "already-redeemed"
	CodeBadSecret       = "bad-secret"
	CodeInvalid         = "invalid"
	CodeInternal        = "internal"
)

var (
	// ErrMalformed is returned (wrapped) by [ReadRequest] and [ReadResponse]
	// for a message that is too large, not strict JSON or fails validation.
	// The peer is misbehaving or of an incompatible version; drop the
	// connection (an issuer may first answer with [CodeInvalid]).
	ErrMalformed = errors.New("identity: malformed redemption message")
	// ErrRedeemInvalid is what [ResponseError] returns (wrapped) when the
	// issuer found the request invalid: usually a version mismatch.
	ErrRedeemInvalid = errors.New("the issuing site rejected the redemption request as invalid; check that both sites run compatible weft versions")
	// ErrNotProven is returned (wrapped) by [RedeemRequest.CheckProof]
	// when the redeemer did not prove, on this connection, the identity key
	// of the site ID it claims: it may not get a certificate naming that
	// site (nor replace that site's link).
	ErrNotProven = errors.New("the redeemer did not prove the identity key of the site it claims to be")
	// ErrRedeemInternal is what [ResponseError] returns (wrapped) when the
	// issuer failed on its side (or sent a code this version does not
	// know); retrying later may help.
	ErrRedeemInternal = errors.New("the issuing site failed to process the redemption; see its log and retry")
)

// codes is the one table between sentinel errors and wire codes. For a code
// with several errors, the first is what [ResponseError] returns.
var codes = []struct {
	code string
	err  error
}{
	{CodeExpired, ErrTokenExpired},
	{CodeUsedUp, ErrTokenUsedUp},
	{CodeUnknown, ErrTokenUnknown},
	{CodeAlreadyRedeemed, ErrTokenAlreadyRedeemed},
	{CodeBadSecret, ErrTokenBadSecret},
	{CodeInvalid, ErrRedeemInvalid},
	{CodeInvalid, ErrMalformed},
	{CodeInvalid, ErrBadCSR},
	{CodeInvalid, ErrNotProven},
	{CodeInternal, ErrRedeemInternal},
}

// RedeemRequest is what a redeemer sends: the token it proves, who it is and
// the CSR for its link client certificate. Addresses are where the redeemer
// can be reached, informational for the issuer.
type RedeemRequest struct {
	TokenID   string    `json:"tokenID"`
	Secret    string    `json:"secret"`
	SiteID    siteid.ID `json:"siteID"`
	SiteName  string    `json:"siteName"`
	CSR       []byte    `json:"csr"`
	Addresses []string  `json:"addresses,omitempty"`
	// Key is the redeemer's identity public key (SiteID is its hash),
	// Cert the certificate of the operational key that made Proof (none
	// when the identity key made it), and Proof the signature over this
	// connection and request (see Prove).
	Key   []byte `json:"key"`
	Cert  []byte `json:"cert,omitempty"`
	Proof []byte `json:"proof"`
}

// Redemption proofs sign a label, the TLS exporter value of the redemption
// connection under redeemExporter, the SHA-256 of the CSR and the token ID:
// a proof is good for this request on this connection only.
const (
	redeemExporter = "EXPORTER-weft-redeem"
	redeemLabel    = "weft redeem v1\x00"
)

// RedeemBinding is the value of the redemption connection both sides sign
// and check a proof over.
func RedeemBinding(cs tls.ConnectionState) ([]byte, error) {
	return cs.ExportKeyingMaterial(redeemExporter, nil, 32)
}

func (r *RedeemRequest) proofMessage(binding []byte) []byte {
	sum := sha256.Sum256(r.CSR)
	b := append([]byte(redeemLabel), binding...)
	b = append(b, sum[:]...)
	return append(b, r.TokenID...)
}

// Prove sets the request's site to p's and signs it for the connection
// whose [RedeemBinding] is binding. Call it last, once TokenID and CSR are
// set.
func (r *RedeemRequest) Prove(p Prover, binding []byte) {
	r.SiteID, r.Key, r.Cert = siteid.FromKey(p.Identity()), p.Identity(), p.CertBytes()
	r.Proof = p.Sign(r.proofMessage(binding))
}

// CheckProof is the issuer's check of [RedeemRequest.Prove]: the key is
// SiteID's (or certified by it, valid at now) and it signed this request
// on this connection. It returns the key that signed, for the caller's
// check of revoked operational keys.
func (r *RedeemRequest) CheckProof(binding []byte, now time.Time) (ed25519.PublicKey, error) {
	signer, err := opkey.VerifyProof(r.SiteID, r.Key, r.Cert, r.proofMessage(binding), r.Proof, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotProven, err)
	}
	return signer, nil
}

// RedeemResponse is the issuer's answer. On success (Code "") CertPEM holds
// the client certificate from [CA.SignClient]; otherwise Code says why and
// Message may add detail for a human.
type RedeemResponse struct {
	Code       string    `json:"code,omitempty"`
	Message    string    `json:"message,omitempty"`
	CertPEM    []byte    `json:"certPEM,omitempty"`
	IssuerID   siteid.ID `json:"issuerID,omitzero"`
	IssuerName string    `json:"issuerName,omitempty"`
}

// Validate checks the request's fields against the protocol limits.
func (r *RedeemRequest) Validate() error {
	if err := checkToken("tokenID", r.TokenID, maxTokenIDLen); err != nil {
		return err
	}
	if err := checkToken("secret", r.Secret, maxSecretLen); err != nil {
		return err
	}
	if r.SiteID.IsZero() {
		return errors.New("siteID missing")
	}
	if err := checkText("siteName", r.SiteName, maxNameLen, true); err != nil {
		return err
	}
	if len(r.CSR) == 0 || len(r.CSR) > maxCSRLen {
		return fmt.Errorf("csr is %d bytes, want 1..%d", len(r.CSR), maxCSRLen)
	}
	if len(r.Cert) > opkey.MaxCertSize {
		return fmt.Errorf("operational key certificate is %d bytes, limit %d", len(r.Cert), opkey.MaxCertSize)
	}
	if len(r.Key) != ed25519.PublicKeySize || len(r.Proof) != ed25519.SignatureSize {
		return fmt.Errorf("key is %d bytes and proof %d, want %d and %d", len(r.Key), len(r.Proof), ed25519.PublicKeySize, ed25519.SignatureSize)
	}
	if len(r.Addresses) > maxAddrs {
		return fmt.Errorf("%d addresses, want at most %d", len(r.Addresses), maxAddrs)
	}
	for i, a := range r.Addresses {
		if err := checkText(fmt.Sprintf("addresses[%d]", i), a, maxAddrLen, true); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the response's fields against the protocol limits: a
// success carries a certificate and the issuer's identity, a failure neither
// a certificate.
func (r *RedeemResponse) Validate() error {
	if err := checkText("message", r.Message, maxMessageLen, false); err != nil {
		return err
	}
	if r.Code != CodeOK {
		if err := checkToken("code", r.Code, maxCodeLen); err != nil {
			return err
		}
		if len(r.CertPEM) != 0 {
			return fmt.Errorf("failed response (code %q) carries a certificate", r.Code)
		}
		return nil
	}
	if len(r.CertPEM) == 0 || len(r.CertPEM) > maxCertPEMLen {
		return fmt.Errorf("certPEM is %d bytes, want 1..%d", len(r.CertPEM), maxCertPEMLen)
	}
	if r.IssuerID.IsZero() {
		return errors.New("issuerID missing")
	}
	return checkText("issuerName", r.IssuerName, maxNameLen, true)
}

// checkText rejects over-long, non-UTF-8 or control-character text, which
// would otherwise end up in logs and terminals.
func checkText(field, s string, max int, required bool) error {
	switch {
	case required && s == "":
		return fmt.Errorf("%s missing", field)
	case len(s) > max:
		return fmt.Errorf("%s is %d bytes, want at most %d", field, len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not UTF-8", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s contains control character %U", field, r)
		}
	}
	return nil
}

// checkToken accepts the restricted alphabet of IDs, secrets and codes:
// letters, digits, '-' and '_'.
func checkToken(field, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%s missing", field)
	}
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes, want at most %d", field, len(s), max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%s has a byte %q outside [A-Za-z0-9_-]", field, c)
		}
	}
	return nil
}

// WriteMessage writes v as one length-prefixed JSON message, in a single
// Write so that it goes out in as few TLS records as possible.
func WriteMessage(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("identity: encode message: %w", err)
	}
	if len(body) > MaxMessageSize {
		return fmt.Errorf("identity: message of %d bytes exceeds %d", len(body), MaxMessageSize)
	}
	buf := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	buf = append(buf, body...)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("identity: write message: %w", err)
	}
	return nil
}

// ReadRequest reads and validates one [RedeemRequest]. I/O errors are
// returned wrapped as they are; everything about the content wraps
// [ErrMalformed].
func ReadRequest(r io.Reader) (*RedeemRequest, error) {
	var req RedeemRequest
	if err := readMessage(r, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("%w: request: %w", ErrMalformed, err)
	}
	// "[]" and absent mean the same; keep one form so equal messages compare
	// equal.
	if len(req.Addresses) == 0 {
		req.Addresses = nil
	}
	return &req, nil
}

// ReadResponse reads and validates one [RedeemResponse], with the same error
// conventions as [ReadRequest]. A response with a failure code is returned
// without error; turn it into one with [ResponseError].
func ReadResponse(r io.Reader) (*RedeemResponse, error) {
	var resp RedeemResponse
	if err := readMessage(r, &resp); err != nil {
		return nil, err
	}
	if err := resp.Validate(); err != nil {
		return nil, fmt.Errorf("%w: response: %w", ErrMalformed, err)
	}
	if len(resp.CertPEM) == 0 {
		resp.CertPEM = nil
	}
	return &resp, nil
}

func readMessage(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("identity: read message header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxMessageSize {
		return fmt.Errorf("%w: length %d, want 1..%d", ErrMalformed, n, MaxMessageSize)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return fmt.Errorf("identity: read message body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	// One JSON value per message: trailing bytes mean the peer and we
	// disagree about the framing.
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after JSON value", ErrMalformed)
	}
	return nil
}

// ErrorCode maps an error from [TokenStore.Redeem], [CA.SignClient] or
// [ReadRequest] to the code an issuer puts in [RedeemResponse.Code]: "" for
// nil, a token code for the ErrToken* errors, [CodeInvalid] for a bad
// request and [CodeInternal] for anything else.
func ErrorCode(err error) string {
	if err == nil {
		return CodeOK
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return CodeInternal
}

// ResponseError is the redeemer's inverse of [ErrorCode]: nil for success,
// else an error that wraps the matching sentinel (so errors.Is works and the
// text says what to do) and carries the issuer's message for detail.
func ResponseError(resp *RedeemResponse) error {
	if resp == nil {
		return fmt.Errorf("identity: no redemption response: %w", ErrRedeemInternal)
	}
	if resp.Code == CodeOK {
		return nil
	}
	// Unknown codes (a newer issuer) fall back to the generic failure.
	sentinel := ErrRedeemInternal
	for _, c := range codes {
		if c.code == resp.Code {
			sentinel = c.err
			break
		}
	}
	if resp.Message == "" || resp.Message == sentinel.Error() {
		return fmt.Errorf("redeem: %w", sentinel)
	}
	return fmt.Errorf("redeem: %w (issuer says: %s)", sentinel, resp.Message)
}
