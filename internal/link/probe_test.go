package link

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// warmProber has measured detectorMinSamples round trips of rtt each.
func warmProber(rtt int64) *prober {
	p := newProber(0, 0)
	for range detectorMinSamples {
		p.pong(-1, rtt)
	}
	return p
}

// The probe state machine, step by step: no probe before round trips were
// measured, one probe at a time, answered only by a PONG for it or a later
// stamp, judged unanswered only when silent for the bound, which ends it.
func TestProberStateMachine(t *testing.T) {
	const pause, minSigma, ceiling, slack = 125 * ms, 10 * ms, 2000 * ms, 50 * ms
	p := newProber(0, 0)
	if _, _, _, ok := p.start(0, pause, minSigma, ceiling); ok {
		t.Fatal("probe started without measured round trips")
	}
	p = warmProber(ms)
	gen, bound, _, ok := p.start(1000*ms, pause, minSigma, ceiling)
	lost := p.pending()
	if want := ms + int64(phiSigmas*float64(minSigma)) + pause; !ok || bound != want {
		t.Fatalf("start: ok %v bound %v, want %v", ok, time.Duration(bound), time.Duration(want))
	}
	if !p.suspect() {
		t.Fatal("not suspect with a probe outstanding")
	}
	if _, _, _, again := p.start(1001*ms, pause, minSigma, ceiling); again {
		t.Fatal("second probe while one is outstanding")
	}
	// A PONG for a PING sent before the probe does not answer it.
	p.pong(999*ms, 2*ms)
	if !p.suspect() {
		t.Fatal("an older PONG cleared the suspicion")
	}
	// Silent since before the probe: wait until probe+bound, dead at it.
	if v, at := p.judge(gen, 1000*ms+bound-1, 900*ms, slack, false); v != verdictWait || at != 1000*ms+bound {
		t.Fatalf("1ns early: %v, %v", v, at)
	}
	if v, _ := p.judge(gen+1, 1000*ms+bound, 900*ms, slack, false); v != verdictClear {
		t.Fatalf("another probe's timer judged this one: %v", v)
	}
	// A frame read after the probe (data queued ahead of the PONG) defers
	// the verdict to bound after it.
	if v, at := p.judge(gen, 1000*ms+bound, 1100*ms, slack, false); v != verdictWait || at != 1100*ms+bound {
		t.Fatalf("frame after the probe: %v, %v", v, at)
	}
	select {
	case <-lost:
		t.Fatal("opens told of an unanswered probe before its verdict")
	default:
	}
	if v, silent := p.judge(gen, 1100*ms+bound, 1100*ms, slack, false); v != verdictUnanswered || silent != bound {
		t.Fatalf("unanswered and silent for the bound: %v, %v", v, silent)
	}
	// Ending it tells the opens waiting on it; the next open may send
	// another.
	p.fail(gen)
	select {
	case <-lost:
	default:
		t.Fatal("opens waiting on the unanswered probe not told")
	}
	if p.suspect() || p.pending() != nil {
		t.Fatal("the unanswered probe is still outstanding")
	}
	if _, _, _, ok := p.start(1200*ms, pause, minSigma, ceiling); !ok {
		t.Fatal("no probe after an unanswered one")
	}
}

// A late answer, before the verdict, clears the suspicion and the pending
// judgement: a peer descheduled for a while does not flap the link.
func TestProberLateAnswerClears(t *testing.T) {
	const pause, minSigma, ceiling, slack = 125 * ms, 10 * ms, 2000 * ms, 50 * ms
	p := warmProber(ms)
	gen, bound, _, _ := p.start(0, pause, minSigma, ceiling)
	if v, _ := p.judge(gen, bound-1, 0, slack, false); v != verdictWait {
		t.Fatalf("early judgement %v", v)
	}
	p.pong(0, bound-1)
	if p.suspect() {
		t.Fatal("still suspect after the answer")
	}
	if v, _ := p.judge(gen, bound, 0, slack, false); v != verdictClear {
		t.Fatalf("answered probe judged %v", v)
	}
	// The slow answer was measured: the next probe allows for it.
	_, next, _, _ := p.start(bound, pause, minSigma, ceiling)
	if next <= bound {
		t.Fatalf("bound %v did not widen after a %v round trip", time.Duration(next), time.Duration(bound-1))
	}
}

// A timer that fires late means this process was not running: the PONG
// may be unread in the socket, so the probe gets one more bound, once.
func TestProberGraceForLateTimer(t *testing.T) {
	const pause, minSigma, ceiling, slack = 125 * ms, 10 * ms, 2000 * ms, 50 * ms
	p := warmProber(ms)
	gen, bound, _, _ := p.start(0, pause, minSigma, ceiling)
	late := bound + slack + 1
	if v, at := p.judge(gen, late, 0, slack, false); v != verdictWait || at != late+bound {
		t.Fatalf("late timer: %v, %v; want a grace to %v", v, at, late+bound)
	}
	// Late again: no second grace.
	if v, _ := p.judge(gen, late+bound+slack+1, 0, slack, false); v != verdictUnanswered {
		t.Fatalf("after the grace: %v", v)
	}
}

// A socket holding unread bytes at the verdict means the read loop is
// behind, not that the peer was silent: one more bound, once.
func TestProberGraceForQueuedInput(t *testing.T) {
	const pause, minSigma, ceiling, slack = 125 * ms, 10 * ms, 2000 * ms, 50 * ms
	p := warmProber(ms)
	gen, bound, _, _ := p.start(0, pause, minSigma, ceiling)
	if v, at := p.judge(gen, bound, 0, slack, true); v != verdictWait || at != 2*bound {
		t.Fatalf("input queued: %v, %v; want a grace to %v", v, at, 2*bound)
	}
	if v, _ := p.judge(gen, 2*bound, 0, slack, true); v != verdictUnanswered {
		t.Fatalf("input still queued after the grace: %v", v)
	}
}

// Jittery round trips widen the bound; it never passes the ceiling.
func TestProberBoundFromJitter(t *testing.T) {
	const pause, minSigma, ceiling = 125 * ms, 10 * ms, 2000 * ms
	steady := warmProber(ms)
	_, b1, _, _ := steady.start(0, pause, minSigma, ceiling)
	jittery := newProber(0, 0)
	for i := range detectorMinSamples {
		jittery.pong(-1, ms+int64(i%2)*200*ms)
	}
	_, b2, _, _ := jittery.start(0, pause, minSigma, ceiling)
	if b2 <= b1 || b2 > ceiling {
		t.Fatalf("jittery bound %v, steady %v", time.Duration(b2), time.Duration(b1))
	}
	huge := warmProber(10 * ceiling)
	if _, b3, _, _ := huge.start(0, pause, minSigma, ceiling); b3 != ceiling {
		t.Fatalf("bound %v past the ceiling", time.Duration(b3))
	}
}

// warmSession answers the session's PINGs at once until it measured enough
// round trips to probe, on a fake clock stepped by hb.
func warmSession(t *testing.T, fc *fakeClock, s *Session, p *rawPeer, hb time.Duration) {
	t.Helper()
	for i := range detectorMinSamples {
		if i > 0 {
			fc.Step(hb)
		}
		ping := p.waitPing(t, time.Duration(i)*hb)
		p.send(t, typePong, ping.payload)
	}
	waitRoundTrips(t, s)
}

// waitRoundTrips waits until s measured enough round trips to probe.
func waitRoundTrips(t *testing.T, s *Session) {
	t.Helper()
	eventually(t, 30*time.Second, "round trips measured", func() bool {
		s.probe.mu.Lock()
		defer s.probe.mu.Unlock()
		return s.probe.rtts.n >= detectorMinSamples
	})
}

// An open the peer does not answer makes the link suspect after
// suspectAfter and sends a PROBE; unanswered and silent for the bound, the
// open fails with ErrPeerUnresponsive (1ms earlier it still waits), the
// stream is reset, and the session stays open and suspect, long before
// DeadAfter, until the peer speaks again.
func TestProbeUnansweredOpen(t *testing.T) {
	const hb, deadAfter = 500 * time.Millisecond, time.Hour
	fc := newFakeClock()
	s, p := fakePeer(t, transports[0], Config{Clock: fc, HeartbeatInterval: hb, DeadAfter: deadAfter})
	warmSession(t, fc, s, p, hb)
	opened := make(chan error, 1)
	go func() { _, err := s.Open(context.Background(), []byte("h")); opened <- err }()
	open := p.next(t, typeOpen)
	after := s.suspectAfter()
	fc.waitArmedAt(t, fc.Now().Add(after))
	fc.Step(after)
	probe := p.next(t, typeProbe)
	if sent := time.Duration(binary.BigEndian.Uint64(probe.payload)); sent != fc.since() || !s.Suspect() {
		t.Fatalf("probe stamped %v at %v, suspect %v", sent, fc.since(), s.Suspect())
	}
	s.probe.mu.Lock()
	bound := time.Duration(s.probe.bound)
	s.probe.mu.Unlock()
	fc.waitArmedAt(t, fc.Now().Add(bound))
	fc.Step(bound - time.Millisecond)
	select {
	case err := <-opened:
		t.Fatalf("open ended 1ms before the probe's bound: %v", err)
	default:
	}
	fc.Step(time.Millisecond)
	waitUnresponsive(t, s, p, opened, open.id)
	if !s.Suspect() {
		t.Fatal("not suspect after the unanswered probe")
	}
	// The open fails as soon as the silence is marked, a moment before the
	// probe's judge ends the probe; until then the outstanding probe alone
	// keeps the link suspect, whoever speaks.
	eventually(t, 30*time.Second, "the probe judged unanswered", func() bool { return !s.probe.suspect() })
	// Any frame, here a PING, is the peer speaking again.
	p.pingPong(t, 1)
	if s.Suspect() {
		t.Fatal("still suspect after the peer spoke")
	}
}

// waitUnresponsive waits for the open of stream id to fail with
// ErrPeerUnresponsive and be reset, with the session still open.
func waitUnresponsive(t *testing.T, s *Session, p *rawPeer, opened <-chan error, id uint32) {
	t.Helper()
	if err := waitErr(t, opened); !errors.Is(err, ErrPeerUnresponsive) {
		t.Fatalf("open: %v, want ErrPeerUnresponsive", err)
	}
	if rst := p.next(t, typeRst); rst.id != id {
		t.Fatalf("RST for stream %d, want %d", rst.id, id)
	}
	alive(t, s, "after the open failed")
}

// A peer that answers the probe, however late within the bound, clears the
// suspicion and keeps the link.
func TestProbeAnsweredKeepsLink(t *testing.T) {
	const hb, deadAfter = 500 * time.Millisecond, time.Hour
	fc := newFakeClock()
	s, p := fakePeer(t, transports[0], Config{Clock: fc, HeartbeatInterval: hb, DeadAfter: deadAfter})
	warmSession(t, fc, s, p, hb)
	go s.Open(context.Background(), []byte("h")) // ends with the session
	p.next(t, typeOpen)
	after := s.suspectAfter()
	fc.waitArmedAt(t, fc.Now().Add(after))
	fc.Step(after)
	probe := p.next(t, typeProbe)
	s.probe.mu.Lock()
	bound := time.Duration(s.probe.bound)
	s.probe.mu.Unlock()
	fc.Step(bound - time.Millisecond)
	p.send(t, typePong, probe.payload)
	eventually(t, 10*time.Second, "suspicion cleared", func() bool { return !s.Suspect() })
	fc.Step(time.Hour / 2)
	alive(t, s, "after the answered probe's bound")
}

// The session answers a PROBE at once with a PONG echoing it, and it does
// not count as a PING of the peer's rhythm.
func TestProbeAnswered(t *testing.T) {
	fc := newFakeClock()
	s, p := fakePeer(t, transports[0], Config{Clock: fc, HeartbeatInterval: time.Hour, DeadAfter: 2 * time.Hour})
	for i := range uint64(3) {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], 1000+i)
		p.send(t, typeProbe, b[:])
		for {
			f := p.next(t, typePong)
			if binary.BigEndian.Uint64(f.payload) == 1000+i {
				break
			}
		}
	}
	s.det.mu.Lock()
	defer s.det.mu.Unlock()
	if s.det.last != -1 {
		t.Fatal("a PROBE was taken for a PING")
	}
}

// frozenConn stops a real session like SIGSTOP does: once frozen, it neither
// hands on what it read nor writes, while the kernel keeps the connection.
type frozenConn struct {
	net.Conn
	mu     sync.Mutex
	frozen chan struct{} // closed to thaw; nil when not frozen
	held   chan struct{} // signalled when a Read holds what it read
}

func (c *frozenConn) freeze() {
	c.mu.Lock()
	c.frozen = make(chan struct{})
	c.held = make(chan struct{}, 1)
	c.mu.Unlock()
}

func (c *frozenConn) thaw() {
	c.mu.Lock()
	if c.frozen != nil {
		close(c.frozen)
		c.frozen = nil
	}
	c.mu.Unlock()
}

// wait blocks while the conn is frozen; reading says the caller holds
// what it read.
func (c *frozenConn) wait(reading bool) {
	c.mu.Lock()
	ch, held := c.frozen, c.held
	c.mu.Unlock()
	if ch == nil {
		return
	}
	if reading {
		select {
		case held <- struct{}{}:
		default:
		}
	}
	<-ch
}

func (c *frozenConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.wait(true)
	return n, err
}

func (c *frozenConn) Write(b []byte) (int, error) {
	c.wait(false)
	return c.Conn.Write(b)
}

// NetConn lets socketOf find the socket under a frozenConn.
func (c *frozenConn) NetConn() net.Conn { return c.Conn }

// frozenServerTCP is loopback TCP whose server end is a frozenConn, which
// it stores in *fb.
func frozenServerTCP(fb **frozenConn) transport {
	return transport{"tcp, server frozen", func(t testing.TB) (net.Conn, net.Conn) {
		a, b := tcpPair(t)
		*fb = &frozenConn{Conn: b}
		return a, *fb
	}}
}

// frozenSessionTCP is loopback TCP whose session end (the one fakePeer
// gives the session) is a frozenConn, which it stores in *fs.
func frozenSessionTCP(fs **frozenConn) transport {
	return transport{"tcp, session frozen", func(t testing.TB) (net.Conn, net.Conn) {
		a, b := tcpPair(t)
		*fs = &frozenConn{Conn: a}
		return *fs, b
	}}
}

// queueInput freezes the session's end fs and has p send two PINGs: the
// read loop holds the first, the second waits in the socket.
func queueInput(t *testing.T, fs *frozenConn, p *rawPeer) {
	t.Helper()
	fs.freeze()
	var b [8]byte
	p.send(t, typePing, b[:])
	select {
	case <-fs.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the read loop read nothing")
	}
	p.send(t, typePing, b[:])
	sock := socketOf(fs)
	eventually(t, 10*time.Second, "a PING queued in the socket", func() bool { return inputQueued(sock) })
}

// frozenSessions starts a client and a server session with cfg over
// loopback TCP whose server end fb can be frozen (thawed before the
// sessions close), once the client measured enough round trips to probe.
func frozenSessions(t *testing.T, cfg Config) (c, s *Session, fb *frozenConn) {
	c, s = sessions(t, frozenServerTCP(&fb), cfg, cfg)
	t.Cleanup(func() { fb.thaw() })
	waitRoundTrips(t, c)
	return c, s, fb
}

// Over real loopback TCP, with DeadAfter an hour: a peer that stops
// reading and writing is found unresponsive by the probe an open sets off;
// that open fails, the link stays up and suspect, and once the peer runs
// again the suspicion clears and a stream opened before the freeze carries
// data both ways.
func TestProbeFindsFrozenPeer(t *testing.T) {
	c, s, fb := frozenSessions(t, Config{HeartbeatInterval: 20 * time.Millisecond, DeadAfter: time.Hour})
	ca, sa := openPair(t, c, s, []byte("before"))
	go confirmAll(s)
	fb.freeze()
	if _, err := c.Open(ctxT(t), []byte("frozen")); !errors.Is(err, ErrPeerUnresponsive) {
		t.Fatalf("open to the frozen peer: %v", err)
	}
	alive(t, c, "after the probe went unanswered")
	if !c.Suspect() {
		t.Fatal("not suspect after the probe went unanswered")
	}
	fb.thaw()
	eventually(t, 30*time.Second, "suspicion cleared", func() bool { return !c.Suspect() })
	streamCarries(t, ca, sa)
	streamCarries(t, sa, ca)
	alive(t, c, "after the thaw")
}

// streamCarries writes a few bytes on w and reads them from r.
func streamCarries(t testing.TB, w, r *Stream) {
	t.Helper()
	msg := []byte("still here")
	if _, err := w.Write(msg); err != nil {
		t.Fatal("write:", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %q, %v", got, err)
	}
}

// Over real loopback TCP: a live peer slow to confirm an open (its
// application busy) is probed, answers, and keeps the link.
func TestProbeSlowConfirmKeepsLink(t *testing.T) {
	cfg := Config{HeartbeatInterval: 20 * time.Millisecond, DeadAfter: time.Hour}
	c, s := sessions(t, transports[1], cfg, cfg)
	waitRoundTrips(t, c)
	ctx := ctxT(t)
	opened := make(chan error, 1)
	go func() { _, err := c.Open(ctx, []byte("slow")); opened <- err }()
	st, err := s.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a probe sent and answered", func() bool {
		c.probe.mu.Lock()
		defer c.probe.mu.Unlock()
		return c.probe.gen > 0 && c.probe.sent < 0
	})
	st.Confirm()
	if err := <-opened; err != nil {
		t.Fatal("slow open:", err)
	}
	alive(t, c, "after the slow open")
}
