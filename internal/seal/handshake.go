package seal

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/siteid"
)

var suite = noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256)

// Handshake sizes: IK's first message is e, s (encrypted) and a 12-byte
// payload (index, timestamp), encrypted; the second is e and an empty
// encrypted payload.
const (
	payload1Len = 4 + 8
	msg1Len     = KeyLen + KeyLen + tagLen + payload1Len + tagLen
	msg2Len     = KeyLen + tagLen
	tagLen      = 16
	checkLen    = 16
)

// ErrHandshake is returned (wrapped) for a handshake message that does not
// authenticate: a forged or altered message, the wrong static key, or a
// prologue (path) that differs between the two ends.
var ErrHandshake = errors.New("seal: handshake failed")

const prologueLabel = "weft seal v1 IK"

// binding is the part of a stream header that the seal authenticates: kind,
// address, origin and every segment; not next, which transit sites change,
// nor the seal itself. (On the heap: a caller's stack room for it would
// widen the frames of every new stream's goroutine, and the profile shows
// the stack copies that costs.)
func binding(h *forward.Header) []byte {
	b := make([]byte, 0, 3+len(h.Address)+16+16*len(h.Segments))
	b = append(b, byte(h.Kind), byte(len(h.Address)))
	b = append(b, h.Address...)
	b = append(b, h.Origin[:]...)
	b = append(b, byte(len(h.Segments)))
	for _, s := range h.Segments {
		b = append(b, s[:]...)
	}
	return b
}

func prologue(bind []byte) []byte {
	return append([]byte(prologueLabel), bind...)
}

// Session is the state two sites share after a handshake: the keys new
// streams derive theirs from. It is created by a handshake and never
// changed after, but for the counters.
type Session struct {
	peer    siteid.ID
	peerKey [KeyLen]byte
	index   uint32 // the initiator's name for it, unique per initiator
	created time.Time
	// prk is HKDF-Extract(salt = Noise's handshake hash, Noise's two
	// split keys): what stream keys are expanded from.
	prk [sha256.Size]byte
	// derivers are clones of HMAC keyed with prk, its pads already
	// hashed, each with room for one stream's info: streamKeys borrows
	// one instead of keying (or cloning) HMAC anew.
	derivers sync.Pool
	// streams is the initiator's last stream counter; the handshake's own
	// stream is 0.
	streams atomic.Uint64
}

// streamKeys are one stream's keys: one per direction and the check value
// that proves to the egress that the opener holds the session.
type streamKeys struct {
	i2r, r2i [recordKeyLen]byte
	check    [checkLen]byte
}

const streamLabel = "weft seal v1 stream"

// deriver is one of a session's derivers.
type deriver struct {
	mac  hash.Hash
	info []byte
	out  [2 * sha256.Size]byte
}

// streamKeys derives the keys of stream counter, bound to its header:
// HKDF's expand step (RFC 5869) on the session's extracted key, two HMACs
// from one of the session's keyed HMACs, so a new stream costs no key
// setup and no allocation.
func (s *Session) streamKeys(counter uint64, bind []byte) streamKeys {
	d := s.derivers.Get().(*deriver)
	defer s.derivers.Put(d)
	// T(1) = HMAC(prk, info | 1), T(2) = HMAC(prk, T(1) | info | 2).
	info := append(d.info[:0], streamLabel...)
	info = binary.BigEndian.AppendUint64(info, counter)
	info = append(info, bind...)
	info = append(info, 1)
	d.info = info
	mac := d.mac
	mac.Reset()
	mac.Write(info)
	t1 := mac.Sum(d.out[:0])
	mac.Reset()
	mac.Write(t1)
	info[len(info)-1] = 2
	mac.Write(info)
	out := mac.Sum(t1)
	var k streamKeys
	copy(k.i2r[:], out)
	copy(k.r2i[:], out[recordKeyLen:])
	copy(k.check[:], out[2*recordKeyLen:])
	clear(d.out[:])
	return k
}

func newSession(hs *noise.HandshakeState, cs1, cs2 *noise.CipherState, peer siteid.ID, index uint32, now time.Time) *Session {
	s := &Session{peer: peer, index: index, created: now}
	copy(s.peerKey[:], hs.PeerStatic())
	k1, k2 := cs1.UnsafeKey(), cs2.UnsafeKey()
	secret := append(k1[:], k2[:]...)
	prk, err := hkdf.Extract(sha256.New, secret, hs.ChannelBinding())
	if err != nil {
		panic(err) // HMAC-SHA256 takes any key
	}
	copy(s.prk[:], prk)
	expander := hmac.New(sha256.New, s.prk[:])
	expander.Reset() // hashes the pads once, for every clone
	s.derivers.New = func() any {
		c, err := expander.(hash.Cloner).Clone()
		if err != nil {
			panic(err) // crypto/hmac over SHA-256 clones
		}
		return &deriver{mac: c.(hash.Hash)}
	}
	clear(secret)
	clear(prk)
	return s
}

// initiation is the ingress's half of a handshake, between its two
// messages.
type initiation struct {
	hs    *noise.HandshakeState
	peer  siteid.ID
	index uint32
}

// initiate starts a handshake with the egress whose static key is peerKey,
// for the stream whose header binding is bind. ts must grow with every
// initiation this site makes, across restarts (wall-clock nanoseconds).
func initiate(local Key, peer siteid.ID, peerKey [KeyLen]byte, bind []byte, index uint32, ts uint64, rng io.Reader) (*initiation, []byte, error) {
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: suite, Random: rng, Pattern: noise.HandshakeIK, Initiator: true,
		Prologue: prologue(bind), StaticKeypair: local.dh(), PeerStatic: peerKey[:],
	})
	if err != nil {
		return nil, nil, err
	}
	var payload [payload1Len]byte
	binary.BigEndian.PutUint32(payload[:], index)
	binary.BigEndian.PutUint64(payload[4:], ts)
	msg, _, _, err := hs.WriteMessage(make([]byte, 0, msg1Len), payload[:])
	if err != nil {
		return nil, nil, err
	}
	return &initiation{hs: hs, peer: peer, index: index}, msg, nil
}

// finish reads the egress's answer and makes the session.
func (in *initiation) finish(msg2 []byte, now time.Time) (*Session, error) {
	if len(msg2) != msg2Len {
		return nil, fmt.Errorf("%w: answer of %d bytes", ErrHandshake, len(msg2))
	}
	payload, cs1, cs2, err := in.hs.ReadMessage(nil, msg2)
	if err != nil || len(payload) != 0 || cs1 == nil {
		return nil, fmt.Errorf("%w: the answer does not authenticate", ErrHandshake)
	}
	return newSession(in.hs, cs1, cs2, in.peer, in.index, now), nil
}

// response is what the egress learns from a first message.
type response struct {
	sess *Session
	ts   uint64
	msg2 []byte
}

// respond answers a first message received for the stream whose header
// binding is bind and whose origin is peer. It does not check that the
// initiator's static key is peer's: the caller compares sess.peerKey with
// the key peer advertises.
func respond(local Key, peer siteid.ID, bind, msg1 []byte, rng io.Reader, now time.Time) (response, error) {
	if len(msg1) != msg1Len {
		return response{}, fmt.Errorf("%w: first message of %d bytes", ErrHandshake, len(msg1))
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: suite, Random: rng, Pattern: noise.HandshakeIK,
		Prologue: prologue(bind), StaticKeypair: local.dh(),
	})
	if err != nil {
		return response{}, err
	}
	payload, _, _, err := hs.ReadMessage(nil, msg1)
	if err != nil || len(payload) != payload1Len {
		return response{}, fmt.Errorf("%w: the first message does not authenticate (wrong key, or a path that differs from the one it was made for)", ErrHandshake)
	}
	msg2, cs1, cs2, err := hs.WriteMessage(make([]byte, 0, msg2Len), nil)
	if err != nil {
		return response{}, err
	}
	index := binary.BigEndian.Uint32(payload)
	return response{
		sess: newSession(hs, cs1, cs2, peer, index, now),
		ts:   binary.BigEndian.Uint64(payload[4:]),
		msg2: msg2,
	}, nil
}
