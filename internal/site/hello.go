package site

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/opkey"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/siteid"
)

// Control message types: the first byte of every control-channel message.
const (
	ctlHello  byte = 1
	ctlRecord byte = 2
	ctlRefuse byte = 3
	// ctlWithdraw is the dialing side's last message on a link it deleted:
	// the issuer forgets the link too instead of showing it down for good.
	// It has no body. An issuer that predates it skips it.
	ctlWithdraw byte = 4
	// ctlRevoke carries a revocation statement (package revocation); it
	// floods like a record.
	ctlRevoke byte = 5
	// ctlReprove is a hello's proof again, made by the operational key a
	// site rotated to, on a link already up: the peer takes it as the
	// key that proved the site on this session, so revoking the previous
	// key does not close the link. Its body is a hello (name and cost are
	// ignored). A peer that predates it skips it.
	ctlReprove byte = 8
)

// hello is the first control message each side sends: what the other side needs
// for its record and that the certificate does not carry. The dialing side
// chooses the link's cost; the accepting side echoes it back.
//
// Key is the sender's identity key, Cert the certificate of the
// operational key that made Proof (package opkey; none when the identity
// key made it) and Proof the signature over this TLS session's exported
// keying material (see helloMessage): the peer's site ID in routing is the
// hash of a key proven on this very connection, not only the ID its
// certificate names, so a site that moved from a random ID keeps its
// links, and no credential lets one site stand in for another.
type hello struct {
	Name  string `json:"name"`
	Cost  uint32 `json:"cost"`
	Key   []byte `json:"key"`
	Cert  []byte `json:"cert,omitempty"`
	Proof []byte `json:"proof"`
}

// Roles in helloMessage: each side signs its own, so a proof cannot be
// reflected back to the side that made it.
const (
	roleDialer   = "dialer"
	roleAcceptor = "acceptor"
)

// helloLabel and helloExporter name what a hello proof signs: the label,
// the signer's role and the TLS exporter value of the session (RFC 8446
// section 7.5) under helloExporter.
const (
	helloLabel    = "weft link hello v1\x00"
	helloExporter = "EXPORTER-weft-link-hello"
)

func helloMessage(role string, binding []byte) []byte {
	b := make([]byte, 0, len(helloLabel)+len(role)+1+len(binding))
	b = append(b, helloLabel...)
	b = append(b, role...)
	b = append(b, 0)
	return append(b, binding...)
}

// refusal is what an accepting site sends instead of its hello when it no
// longer stands behind the dialer's credential. It is final: the dialer stops
// rather than retry a link that can never come back.
type refusal struct {
	Reason  string `json:"reason"` // refusedRevoked or refusedSuperseded
	Message string `json:"message"`
}

// Refusal reasons.
const (
	// refusedRevoked: the issuer deleted the link (or never made it).
	refusedRevoked = "revoked"
	// refusedSuperseded: the dialer redeemed a newer token since; this
	// credential was replaced.
	refusedSuperseded = "superseded"
)

// maxHello bounds the hello and refusal decoders.
const maxHello = 4 << 10

// maxLinkCost keeps path sums far from overflow: 32 hops of the largest cost
// still fit easily in the router's uint64 costs.
const maxLinkCost = 1 << 24

// phase is where a link session's handshake is.
type phase uint8

const (
	awaitHello    phase = iota // hello not yet received
	linkUp                     // hellos exchanged: records flow
	handshakeOver              // refused, failed or timed out: the session closes
)

// handshake is one link session's hello exchange, a pure state machine. The
// session feeds it its start, each control message and its deadline; it says
// what to send, when the link is up, which records go to the router, and
// when and why to close. Control messages arrive in order on one session, and
// each side sends its hello before any record, so a record before the hello
// is a protocol violation rather than something to hold.
type handshake struct {
	inbound bool
	self    string          // this site's name, for its hello
	key     identity.Prover // this site's identity, proven in its hello
	binding []byte          // the session's TLS exporter value
	// now is the time certificates in the peer's hello are checked at;
	// revoked says whether an operational key is revoked (nil: none is).
	now     time.Time
	revoked func(key []byte) bool
	phase   phase
	peer    hello     // the peer's hello, once received
	site    siteid.ID // the peer's site: the hash of its proven key
	// signer is the key that made the peer's proof: its identity key or
	// an operational key.
	signer ed25519.PublicKey
}

// ourHello is this site's hello with the proof of its key.
func (h *handshake) ourHello(cost uint32) []byte { return h.proof(ctlHello, cost) }

// reprove makes key this side's prover and returns the ctlReprove message
// that proves it on the session.
func (h *handshake) reprove(key identity.Prover) []byte {
	h.key = key
	return h.proof(ctlReprove, h.peer.Cost)
}

func (h *handshake) proof(typ byte, cost uint32) []byte {
	role := roleDialer
	if h.inbound {
		role = roleAcceptor
	}
	return encodeControl(typ, hello{Name: h.self, Cost: cost, Key: h.key.Identity(), Cert: h.key.CertBytes(),
		Proof: h.key.Sign(helloMessage(role, h.binding))})
}

// checkProof verifies the peer's proof of its key and returns its site.
func (h *handshake) checkProof(p hello) (siteid.ID, error) {
	role := roleAcceptor
	if h.inbound {
		role = roleDialer
	}
	site := siteid.FromKey(p.Key)
	signer, err := opkey.VerifyProof(site, p.Key, p.Cert, helloMessage(role, h.binding), p.Proof, h.now)
	if err != nil {
		return siteid.ID{}, fmt.Errorf("hello: the peer did not prove its identity key on this connection: %w", err)
	}
	if h.revoked != nil && h.revoked(signer) {
		return siteid.ID{}, fmt.Errorf("hello: site %s proved itself with an operational key it revoked", site)
	}
	h.signer = signer
	if site == siteid.FromKey(h.key.Identity()) {
		return siteid.ID{}, errors.New("hello: the peer is this site itself")
	}
	return site, nil
}

// provenHello decodes a hello and checks its proof.
func (h *handshake) provenHello(b []byte) (hello, siteid.ID, error) {
	p, err := decodeHello(b)
	if err != nil {
		return p, siteid.ID{}, err
	}
	site, err := h.checkProof(p)
	return p, site, err
}

// hsAction is what the session must do after a step, in this order: send,
// then bring the link up, then hand the record to the router, or close.
type hsAction struct {
	send    []byte   // a control message to send
	up      bool     // the link is up: register the peer with cost peer.Cost
	record  []byte   // a site record to give the router
	revoke  []byte   // a revocation statement
	rotate  []byte   // (issuer) a request to rotate the link's certificate
	rotated []byte   // (dialer) the issuer's answer to it
	refused *refusal // the issuer refused this link for good
	// withdrawn: the dialer deleted the link; forget it, then close.
	withdrawn bool
	close     error // close the session with this reason
}

// start is the first step: the dialing side sends its hello with the link's
// cost; the accepting side waits for it.
func (h *handshake) start(cost uint32) hsAction {
	if h.inbound {
		return hsAction{}
	}
	h.peer.Cost = cost
	return hsAction{send: h.ourHello(cost)}
}

// control steps the handshake with one control message from the peer.
func (h *handshake) control(msg []byte) hsAction {
	if h.phase == handshakeOver {
		return hsAction{}
	}
	if len(msg) == 0 {
		return h.fail(errors.New("empty control message"))
	}
	switch msg[0] {
	case ctlHello:
		if h.phase != awaitHello {
			return h.fail(errors.New("a second hello"))
		}
		p, site, err := h.provenHello(msg[1:])
		if err != nil {
			return h.fail(err)
		}
		h.site, h.phase = site, linkUp
		if !h.inbound {
			// The cost is the dialer's choice, made in start.
			h.peer.Name = p.Name
			return hsAction{up: true}
		}
		h.peer = hello{Name: p.Name, Cost: max(p.Cost, 1)}
		return hsAction{send: h.ourHello(h.peer.Cost), up: true}
	case ctlReprove:
		if h.phase != linkUp {
			return h.fail(errors.New("a new proof before the hello"))
		}
		// provenHello takes the proof's key as the session's signer.
		_, site, err := h.provenHello(msg[1:])
		if err == nil && site != h.site {
			err = fmt.Errorf("hello: a new proof for site %s on the session of site %s", site, h.site)
		}
		if err != nil {
			return h.fail(err)
		}
		return hsAction{}
	case ctlRecord:
		if h.phase != linkUp {
			return h.fail(errors.New("a site record before the hello"))
		}
		return hsAction{record: msg[1:]}
	case ctlRevoke:
		if h.phase != linkUp {
			return h.fail(errors.New("a revocation before the hello"))
		}
		return hsAction{revoke: msg[1:]}
	case ctlRotate:
		if !h.inbound || h.phase != linkUp {
			return h.fail(errors.New("a rotation request out of turn"))
		}
		return hsAction{rotate: msg[1:]}
	case ctlRotated:
		if h.inbound || h.phase != linkUp {
			return h.fail(errors.New("a rotation answer out of turn"))
		}
		return hsAction{rotated: msg[1:]}
	case ctlRefuse:
		if h.inbound || h.phase != awaitHello {
			return h.fail(errors.New("a refusal out of turn"))
		}
		r, err := decodeRefusal(msg[1:])
		if err != nil {
			return h.fail(err)
		}
		h.phase = handshakeOver
		return hsAction{refused: &r, close: fmt.Errorf("link refused by the issuing site: %s", r.Message)}
	case ctlWithdraw:
		if !h.inbound || h.phase != linkUp {
			return h.fail(errors.New("a withdrawal out of turn"))
		}
		h.phase = handshakeOver
		return hsAction{withdrawn: true, close: errors.New("link deleted by the dialing site")}
	default:
		// Unknown types are skipped so that newer peers can add messages.
		return hsAction{}
	}
}

// timeout is the handshake's deadline passing: a link still waiting for its
// hello closes.
func (h *handshake) timeout() hsAction {
	if h.phase != awaitHello {
		return hsAction{}
	}
	return h.fail(errors.New("peer sent no hello in time"))
}

func (h *handshake) fail(err error) hsAction {
	h.phase = handshakeOver
	return hsAction{close: err}
}

func encodeControl(typ byte, v any) []byte {
	b, _ := json.Marshal(v) // hello and refusal always encode
	return append([]byte{typ}, b...)
}

// decodeStrict decodes one bounded JSON object with no unknown fields.
func decodeStrict(b []byte, v any) error {
	if len(b) > maxHello {
		return fmt.Errorf("%d bytes is over the limit of %d", len(b), maxHello)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed: %w", err)
	}
	if !atEnd(dec) {
		return errors.New("malformed: trailing data")
	}
	return nil
}

// decodeHello validates a peer's hello.
func decodeHello(b []byte) (hello, error) {
	var h hello
	if err := decodeStrict(b, &h); err != nil {
		return h, fmt.Errorf("hello: %w", err)
	}
	if h.Cost > maxLinkCost {
		return h, fmt.Errorf("hello: cost %d is over the limit of %d", h.Cost, maxLinkCost)
	}
	if err := resource.ValidateName(h.Name); err != nil {
		return h, fmt.Errorf("hello: %w", err)
	}
	if len(h.Cert) > opkey.MaxCertSize {
		return h, fmt.Errorf("hello: operational key certificate of %d bytes, limit %d", len(h.Cert), opkey.MaxCertSize)
	}
	if len(h.Key) != ed25519.PublicKeySize || len(h.Proof) != ed25519.SignatureSize {
		return h, fmt.Errorf("hello: key of %d bytes and proof of %d, want %d and %d", len(h.Key), len(h.Proof), ed25519.PublicKeySize, ed25519.SignatureSize)
	}
	return h, nil
}

// decodeRefusal validates an issuer's refusal.
func decodeRefusal(b []byte) (refusal, error) {
	var r refusal
	if err := decodeStrict(b, &r); err != nil {
		return r, fmt.Errorf("refusal: %w", err)
	}
	if r.Reason != refusedRevoked && r.Reason != refusedSuperseded {
		return r, fmt.Errorf("refusal: unknown reason %.40q", r.Reason)
	}
	if len(r.Message) > 1024 {
		r.Message = r.Message[:1024]
	}
	return r, nil
}
