package seal

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/siteid"
)

// AcceptedStream is a stream delivered to this site, not yet confirmed.
type AcceptedStream interface {
	Stream
	Confirm() error
	Reject(code uint16, msg string) error
}

// PeerKeyFunc returns the static key that site id advertises (in its site
// record), or false if it advertises none.
type PeerKeyFunc func(id siteid.ID) ([KeyLen]byte, bool)

// Responder is the egress side: it answers handshakes and accepts streams
// of the sessions they made, refusing any it cannot authenticate.
type Responder struct {
	cfg Config

	mu sync.Mutex // guards the fields below; never held across I/O
	// prev is the static key cfg.Key replaced (SetKey), still answered
	// for ingresses that handshake with it; nil if none.
	prev     *Key
	sessions map[sessionKey]*served
	byPeer   map[siteid.ID][]sessionKey // oldest first, at most maxSessionsPerPeer
	lastTS   map[siteid.ID]uint64       // newest handshake timestamp per ingress
}

type sessionKey struct {
	peer  siteid.ID
	index uint32
}

// served is a session at the egress with the streams it has seen.
type served struct {
	sess *Session
	seen window
}

// maxSessionsPerPeer bounds what one ingress can make an egress hold: the
// current session, the one it replaces, and room for a restart.
const maxSessionsPerPeer = 4

// NewResponder returns a Responder with no sessions.
func NewResponder(cfg Config) *Responder {
	return &Responder{
		cfg:      cfg.withDefaults(),
		sessions: map[sessionKey]*served{},
		byPeer:   map[siteid.ID][]sessionKey{},
		lastTS:   map[siteid.ID]uint64{},
	}
}

// Refusal is why Accept refused a stream: its code and message went to the
// ingress in a REJECT; Reason is a short label for metrics.
type Refusal struct {
	Code    uint16
	Reason  string
	Message string
}

func (r *Refusal) Error() string { return r.Message }

func refuse(code uint16, reason, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Accept authenticates the seal of st, a stream whose path ends here, and
// returns it as a Conn whose Peer is the authenticated ingress site. It
// refuses (rejects st, and returns a *Refusal) a stream with no seal, a
// forged, altered or replayed one, one bound to another path, and one whose
// ingress key is not the key its origin advertises (peerKey). The caller
// must Confirm or Reject the returned Conn.
func (r *Responder) Accept(st AcceptedStream, h *forward.Header, peerKey PeerKeyFunc) (*Conn, error) {
	c, ref := r.accept(st, h, peerKey)
	if ref != nil {
		return nil, r.refuse(st, h, ref)
	}
	return c, nil
}

// AcceptDirect authenticates st, a stream whose path ends here and whose
// header carries no seal, by the link it arrived on, whose peer the link's
// mutual TLS and hello proved to be site linkPeer (zero while not yet
// proven). That link is end to end only when its peer is the stream's
// origin: then the origin is authenticated and the stream is served as
// it is. Any other unsealed stream came through a transit site, which
// could have made it up or stripped its seal: AcceptDirect refuses it
// (rejects st, and returns a *Refusal) as Accept refuses a forged one.
// The caller must Confirm or Reject st when it returns nil.
func (r *Responder) AcceptDirect(st AcceptedStream, h *forward.Header, linkPeer siteid.ID) error {
	switch {
	case linkPeer.IsZero():
		return r.refuse(st, h, refuse(forward.RejectSeal, "unsealed-not-peer",
			"stream of site %s arrived unsealed on a link whose peer is not proven yet: only a site's own link may carry its streams unsealed", h.Origin))
	case linkPeer != h.Origin:
		return r.refuse(st, h, refuse(forward.RejectSeal, "unsealed-not-peer",
			"stream of site %s arrived unsealed from site %s: only a site's own link may carry its streams unsealed; through a transit site a stream must be sealed end to end", h.Origin, linkPeer))
	}
	return nil
}

// refuse rejects st with ref, counts and logs it, and returns ref.
func (r *Responder) refuse(st AcceptedStream, h *forward.Header, ref *Refusal) error {
	st.Reject(ref.Code, ref.Message)
	r.cfg.Refused(ref.Reason)
	r.cfg.Logger.Warn("service stream refused by the seal check", "origin", h.Origin.String(), "address", h.Address, "reason", ref.Reason, "err", ref.Message)
	return ref
}

func (r *Responder) accept(st AcceptedStream, h *forward.Header, peerKey PeerKeyFunc) (*Conn, *Refusal) {
	p, err := parsePreamble(h.Seal)
	if err != nil {
		return nil, refuse(forward.RejectSeal, "preamble", "%v", err)
	}
	bind := binding(h)
	if p.kind == kindInit {
		return r.acceptInit(st, h.Origin, bind, p.msg1, peerKey)
	}
	k := sessionKey{peer: h.Origin, index: p.index}
	r.mu.Lock()
	sv := r.sessions[k]
	r.mu.Unlock()
	if sv == nil || r.cfg.Now().Sub(sv.sess.created) >= r.cfg.RejectAfter {
		return nil, refuse(forward.RejectSealSession, "session", "no session %d with site %s here (restarted or expired): handshake again", p.index, h.Origin)
	}
	keys := sv.sess.streamKeys(p.counter, bind)
	if subtle.ConstantTimeCompare(keys.check[:], p.check[:]) != 1 {
		return nil, refuse(forward.RejectSeal, "check", "seal check failed: the stream header was altered on its way or the ingress is not site %s", h.Origin)
	}
	r.mu.Lock()
	fresh := sv.seen.mark(p.counter)
	r.mu.Unlock()
	if !fresh {
		return nil, refuse(forward.RejectSeal, "replay", "stream %d of session %d replayed (or too old)", p.counter, p.index)
	}
	return newConn(st, h.Origin, keys.r2i, keys.i2r, r.cfg.Refused), nil
}

func (r *Responder) acceptInit(st AcceptedStream, origin siteid.ID, bind, msg1 []byte, peerKey PeerKeyFunc) (*Conn, *Refusal) {
	want, ok := peerKey(origin)
	if !ok {
		return nil, refuse(forward.RejectSeal, "unknown-origin", "origin site %s advertises no seal key here: is it reachable and up to date?", origin)
	}
	now := r.cfg.Now()
	r.mu.Lock()
	key, prev := r.cfg.Key, r.prev
	r.mu.Unlock()
	resp, err := respond(key, origin, bind, msg1, r.cfg.Rand, now)
	if err != nil && prev != nil {
		resp, err = respond(*prev, origin, bind, msg1, r.cfg.Rand, now)
	}
	if err != nil {
		return nil, refuse(forward.RejectSeal, "handshake", "%v", err)
	}
	if resp.sess.peerKey != want && !r.prevPeerKey(origin, resp.sess.peerKey) {
		return nil, refuse(forward.RejectSeal, "wrong-key", "handshake made with a static key that origin site %s does not advertise", origin)
	}
	if ref := r.admit(resp, now); ref != nil {
		return nil, ref
	}
	k := resp.sess.streamKeys(0, bind)
	c := newConn(st, origin, k.r2i, k.i2r, r.cfg.Refused)
	c.answer = resp.msg2
	return c, nil
}

// admit stores the session a handshake made, unless its timestamp is not
// newer than the last one of that ingress (a replayed first message).
func (r *Responder) admit(resp response, now time.Time) *Refusal {
	peer := resp.sess.peer
	r.mu.Lock()
	defer r.mu.Unlock()
	if resp.ts <= r.lastTS[peer] {
		return refuse(forward.RejectSeal, "replay", "handshake from site %s replayed (timestamp not newer than its last)", peer)
	}
	r.lastTS[peer] = resp.ts
	keys := slices.DeleteFunc(r.byPeer[peer], func(k sessionKey) bool {
		sv := r.sessions[k]
		if now.Sub(sv.sess.created) >= r.cfg.RejectAfter || k.index == resp.sess.index {
			delete(r.sessions, k)
			return true
		}
		return false
	})
	if len(keys) >= maxSessionsPerPeer {
		delete(r.sessions, keys[0])
		keys = keys[1:]
	}
	k := sessionKey{peer: peer, index: resp.sess.index}
	sv := &served{sess: resp.sess}
	sv.seen.mark(0)
	r.sessions[k] = sv
	r.byPeer[peer] = append(keys, k)
	return nil
}

// Confirm confirms a stream Accept returned and, for a stream that made a
// session, sends the handshake's answer ahead of any record.
func (c *Conn) Confirm() error {
	st, ok := c.Stream.(AcceptedStream)
	if !ok {
		return errors.New("seal: Confirm on a stream this site opened")
	}
	if err := st.Confirm(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.answer == nil {
		return nil
	}
	_, err := c.Stream.Write(c.answer)
	c.answer = nil
	if err != nil {
		c.failWriteLocked(err)
	}
	return err
}

// Reject refuses a stream Accept returned.
func (c *Conn) Reject(code uint16, msg string) error {
	st, ok := c.Stream.(AcceptedStream)
	if !ok {
		return errors.New("seal: Reject on a stream this site opened")
	}
	return st.Reject(code, msg)
}
