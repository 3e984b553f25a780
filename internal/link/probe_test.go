package link

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// warmProber has measured detectorMinSamples round trips of rtt each.
func warmProber(rtt int64) *prober {
	p := newProber()
	for range detectorMinSamples {
		p.pong(-1, rtt)
	}
	return p
}

// The probe state machine, step by step: no probe before round trips were
// measured, one probe at a time, answered only by a PONG for it or a later
// stamp, judged dead only when unanswered and silent for the bound.
func TestProberStateMachine(t *testing.T) {
	const pause, minSigma, ceiling, slack = 125 * ms, 10 * ms, 2000 * ms, 50 * ms
	p := newProber()
	if _, _, _, ok := p.start(0, pause, minSigma, ceiling); ok {
		t.Fatal("probe started without measured round trips")
	}
	p = warmProber(ms)
	gen, bound, _, ok := p.start(1000*ms, pause, minSigma, ceiling)
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
	if v, at := p.judge(gen, 1000*ms+bound-1, 900*ms, slack); v != verdictWait || at != 1000*ms+bound {
		t.Fatalf("1ns early: %v, %v", v, at)
	}
	if v, _ := p.judge(gen+1, 1000*ms+bound, 900*ms, slack); v != verdictClear {
		t.Fatalf("another probe's timer judged this one: %v", v)
	}
	// A frame read after the probe (data queued ahead of the PONG) defers
	// the verdict to bound after it.
	if v, at := p.judge(gen, 1000*ms+bound, 1100*ms, slack); v != verdictWait || at != 1100*ms+bound {
		t.Fatalf("frame after the probe: %v, %v", v, at)
	}
	if v, silent := p.judge(gen, 1100*ms+bound, 1100*ms, slack); v != verdictDead || silent != bound {
		t.Fatalf("unanswered and silent for the bound: %v, %v", v, silent)
	}
}

// A late answer, before the verdict, clears the suspicion and the pending
// judgement: a peer descheduled for a while does not flap the link.
func TestProberLateAnswerClears(t *testing.T) {
	const pause, minSigma, ceiling, slack = 125 * ms, 10 * ms, 2000 * ms, 50 * ms
	p := warmProber(ms)
	gen, bound, _, _ := p.start(0, pause, minSigma, ceiling)
	if v, _ := p.judge(gen, bound-1, 0, slack); v != verdictWait {
		t.Fatalf("early judgement %v", v)
	}
	p.pong(0, bound-1)
	if p.suspect() {
		t.Fatal("still suspect after the answer")
	}
	if v, _ := p.judge(gen, bound, 0, slack); v != verdictClear {
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
	if v, at := p.judge(gen, late, 0, slack); v != verdictWait || at != late+bound {
		t.Fatalf("late timer: %v, %v; want a grace to %v", v, at, late+bound)
	}
	// Late again: no second grace.
	if v, _ := p.judge(gen, late+bound+slack+1, 0, slack); v != verdictDead {
		t.Fatalf("after the grace: %v", v)
	}
}

// Jittery round trips widen the bound; it never passes the ceiling.
func TestProberBoundFromJitter(t *testing.T) {
	const pause, minSigma, ceiling = 125 * ms, 10 * ms, 2000 * ms
	steady := warmProber(ms)
	_, b1, _, _ := steady.start(0, pause, minSigma, ceiling)
	jittery := newProber()
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
// session is dead long before DeadAfter, 1ms earlier it is alive.
func TestProbeUnansweredOpen(t *testing.T) {
	const hb, deadAfter = 500 * time.Millisecond, time.Hour
	fc := newFakeClock()
	s, p := fakePeer(t, transports[0], Config{Clock: fc, HeartbeatInterval: hb, DeadAfter: deadAfter})
	warmSession(t, fc, s, p, hb)
	opened := make(chan error, 1)
	go func() { _, err := s.Open(context.Background(), []byte("h")); opened <- err }()
	p.next(t, typeOpen)
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
	alive(t, s, "1ms before the probe's bound")
	fc.Step(time.Millisecond)
	waitDone(t, s)
	if !errors.Is(s.Err(), ErrPeerDead) || !strings.Contains(s.Err().Error(), "probe unanswered: nothing received for "+bound.Round(time.Millisecond).String()) {
		t.Fatalf("err %v", s.Err())
	}
	if err := <-opened; !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("open: %v", err)
	}
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
}

func (c *frozenConn) freeze() {
	c.mu.Lock()
	c.frozen = make(chan struct{})
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

func (c *frozenConn) wait() {
	c.mu.Lock()
	ch := c.frozen
	c.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (c *frozenConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.wait()
	return n, err
}

func (c *frozenConn) Write(b []byte) (int, error) {
	c.wait()
	return c.Conn.Write(b)
}

// Over real loopback TCP, with DeadAfter an hour: a peer that stops
// reading and writing is found dead by the probe an open sets off, and
// never before it was frozen.
func TestProbeFindsFrozenPeer(t *testing.T) {
	var fb *frozenConn
	frozenTCP := transport{"tcp, server frozen", func(t testing.TB) (net.Conn, net.Conn) {
		a, b := tcpPair(t)
		fb = &frozenConn{Conn: b}
		return a, fb
	}}
	cfg := Config{HeartbeatInterval: 20 * time.Millisecond, DeadAfter: time.Hour}
	c, s := sessions(t, frozenTCP, cfg, cfg)
	t.Cleanup(func() { fb.thaw() }) // runs before the sessions close
	go confirmAll(s)
	waitRoundTrips(t, c)
	if _, err := c.Open(ctxT(t), []byte("before")); err != nil {
		t.Fatal("open before the freeze:", err)
	}
	alive(t, c, "before the freeze")
	fb.freeze()
	if _, err := c.Open(ctxT(t), []byte("frozen")); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("open to the frozen peer: %v", err)
	}
	if !errors.Is(c.Err(), ErrPeerDead) || !strings.Contains(c.Err().Error(), "probe unanswered") {
		t.Fatalf("err %v, want the probe's ErrPeerDead", c.Err())
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
