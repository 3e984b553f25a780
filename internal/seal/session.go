package seal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/siteid"
)

// Config configures a site's [Initiator] and [Responder].
type Config struct {
	Self siteid.ID
	Key  Key
	// RekeyAfter is the age at which an ingress replaces a session with a
	// new handshake (forward secrecy for the streams after it); default 2
	// minutes. Streams opened on a session keep their keys.
	RekeyAfter time.Duration
	// RejectAfter is the age at which an egress refuses new streams of a
	// session; default 3 minutes. It must exceed RekeyAfter.
	RejectAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand makes ephemeral keys; nil means crypto/rand.
	Rand io.Reader
	// PrevPeerKey, when set, returns the static key an ingress's current
	// one replaced and that it may still handshake with (Record
	// PrevSealKey); the egress accepts either.
	PrevPeerKey PeerKeyFunc
	// Refused is told the reason of each refused stream and broken
	// record (for metrics); may be nil.
	Refused func(reason string)
	Logger  *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.RekeyAfter == 0 {
		c.RekeyAfter = 2 * time.Minute
	}
	if c.RejectAfter == 0 {
		c.RejectAfter = 3 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Refused == nil {
		c.Refused = func(string) {}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// OpenFunc opens a stream along h's path and returns once the last
// segment confirmed it (forward.Open).
type OpenFunc func(ctx context.Context, h *forward.Header) (Stream, error)

// Initiator is the ingress side: it keeps one session per egress site and
// opens sealed streams on it.
type Initiator struct {
	cfg Config

	mu        sync.Mutex // guards the fields below; never held across I/O
	peers     map[siteid.ID]*peerSession
	nextIndex uint32
	lastTS    uint64
}

// maxStreams is how many streams an ingress opens on one session before it
// handshakes anew, whatever the session's age.
const maxStreams = 1 << 20

type peerSession struct {
	sess    *Session
	pending chan struct{} // closed when the handshake in progress ends
}

// NewInitiator returns an Initiator with no sessions.
func NewInitiator(cfg Config) *Initiator {
	cfg = cfg.withDefaults()
	var seed [4]byte
	io.ReadFull(cfg.Rand, seed[:])
	return &Initiator{
		cfg: cfg, peers: map[siteid.ID]*peerSession{},
		nextIndex: uint32(seed[0]) | uint32(seed[1])<<8 | uint32(seed[2])<<16 | uint32(seed[3])<<24,
	}
}

// Open opens a sealed stream along h's path to its last segment, whose
// advertised static key is peerKey: on the session with that site, or
// after a handshake that makes one. h is not changed.
func (in *Initiator) Open(ctx context.Context, h *forward.Header, peerKey [KeyLen]byte, open OpenFunc) (*Conn, error) {
	if len(h.Segments) == 0 {
		return nil, fmt.Errorf("%w: no segments", forward.ErrBadHeader)
	}
	dst := h.Segments[len(h.Segments)-1]
	bind := binding(h)
	for retried := false; ; {
		sess, wait := in.session(dst, peerKey)
		switch {
		case sess != nil:
			c, err := in.resume(ctx, h, bind, sess, open)
			var rej *link.RejectError
			if !retried && errors.As(err, &rej) && rej.Code == forward.RejectSealSession {
				// The egress restarted or expired the session: handshake
				// again, once.
				in.forget(dst, sess)
				retried = true
				continue
			}
			return c, err
		case wait != nil:
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		default:
			return in.handshake(ctx, h, bind, dst, peerKey, open)
		}
	}
}

// session returns the session to use for a new stream to dst, or a channel
// to wait on while another stream's handshake runs, or neither: then the
// caller must handshake, and settle when done. A session due for rekeying
// is still used while someone else's handshake replaces it.
func (in *Initiator) session(dst siteid.ID, peerKey [KeyLen]byte) (*Session, <-chan struct{}) {
	in.mu.Lock()
	defer in.mu.Unlock()
	ps := in.peers[dst]
	if ps == nil {
		ps = &peerSession{}
		in.peers[dst] = ps
	}
	age := time.Duration(1<<63 - 1)
	if ps.sess != nil && ps.sess.peerKey == peerKey && ps.sess.streams.Load() < maxStreams {
		age = in.cfg.Now().Sub(ps.sess.created)
	}
	if age < in.cfg.RekeyAfter {
		return ps.sess, nil
	}
	if ps.pending == nil {
		ps.pending = make(chan struct{})
		return nil, nil
	}
	if age < in.cfg.RekeyAfter+(in.cfg.RejectAfter-in.cfg.RekeyAfter)/2 {
		return ps.sess, nil
	}
	return nil, ps.pending
}

// settle ends the handshake in progress to dst, with its session or none.
func (in *Initiator) settle(dst siteid.ID, sess *Session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	ps := in.peers[dst]
	if sess != nil {
		ps.sess = sess
	}
	close(ps.pending)
	ps.pending = nil
}

// forget drops sess, which its egress no longer holds.
func (in *Initiator) forget(dst siteid.ID, sess *Session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if ps := in.peers[dst]; ps.sess == sess {
		ps.sess = nil
	}
}

func (in *Initiator) handshake(ctx context.Context, h *forward.Header, bind []byte, dst siteid.ID, peerKey [KeyLen]byte, open OpenFunc) (c *Conn, err error) {
	var sess *Session
	defer func() { in.settle(dst, sess) }()
	in.mu.Lock()
	in.nextIndex++
	index := in.nextIndex
	in.lastTS = max(in.lastTS+1, uint64(in.cfg.Now().UnixNano()))
	ts := in.lastTS
	key := in.cfg.Key
	in.mu.Unlock()
	init, msg1, err := initiate(key, dst, peerKey, bind, index, ts, in.cfg.Rand)
	if err != nil {
		return nil, err
	}
	sh := *h
	sh.Seal = (&preamble{kind: kindInit, msg1: msg1}).marshal()
	st, err := open(ctx, &sh)
	if err != nil {
		return nil, err
	}
	// The egress writes its answer right after confirming, so this waits
	// about nothing; the deadline covers an egress that never answers.
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(forward.OpenTimeout) // an I/O deadline, on the real clock
	}
	st.SetReadDeadline(dl)
	var msg2 [msg2Len]byte
	if _, err := io.ReadFull(st, msg2[:]); err != nil {
		st.Close()
		return nil, fmt.Errorf("seal: reading the handshake answer of site %s: %w", dst, err)
	}
	st.SetReadDeadline(time.Time{})
	s, err := init.finish(msg2[:], in.cfg.Now())
	if err != nil {
		st.Reset(forward.ResetSeal)
		in.cfg.Refused("handshake")
		return nil, fmt.Errorf("site %s: %w", dst, err)
	}
	sess = s
	k := sess.streamKeys(0, bind)
	return newConn(st, dst, k.i2r, k.r2i, in.cfg.Refused), nil
}

func (in *Initiator) resume(ctx context.Context, h *forward.Header, bind []byte, sess *Session, open OpenFunc) (*Conn, error) {
	counter := sess.streams.Add(1)
	k := sess.streamKeys(counter, bind)
	sh := *h
	sh.Seal = (&preamble{kind: kindResume, index: sess.index, counter: counter, check: k.check}).marshal()
	st, err := open(ctx, &sh)
	if err != nil {
		return nil, err
	}
	return newConn(st, sess.peer, k.i2r, k.r2i, in.cfg.Refused), nil
}
