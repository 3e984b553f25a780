package link

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// The stall bound: the 90th percentile of the measured round trips plus
// its margin, at most its ceiling and the probe's bound, counted from the
// probe or from the last frame after it; no stall once the probe is
// answered.
func TestProberStallBound(t *testing.T) {
	const pause, minSigma, ceiling = 125 * ms, 10 * ms, 2000 * ms
	const stallPause, stallCeiling = 50 * ms, 250 * ms
	p := newProber(stallPause, stallCeiling)
	for i := range int64(10) {
		p.pong(-1, (i+1)*ms) // 1..10 ms: the 90th percentile is 9 ms
	}
	_, bound, _, _ := p.start(1000*ms, pause, minSigma, ceiling)
	if at, ok := p.stallAt(900 * ms); !ok || at != 1000*ms+9*ms+stallPause {
		t.Fatalf("stall at %v %v, want 1.059s", time.Duration(at), ok)
	}
	if at, _ := p.stallAt(1100 * ms); at != 1100*ms+9*ms+stallPause {
		t.Fatalf("after a frame at 1.1s: stall at %v, want 1.159s", time.Duration(at))
	}
	p.pong(1000*ms, ms)
	if _, ok := p.stallAt(900 * ms); ok {
		t.Fatal("a stall judged after the answer")
	}

	slow := newProber(stallPause, stallCeiling)
	for range 10 {
		slow.pong(-1, 400*ms)
	}
	slow.start(0, pause, minSigma, ceiling)
	if at, _ := slow.stallAt(0); at != stallCeiling {
		t.Fatalf("stall at %v, past its ceiling %v", time.Duration(at), time.Duration(stallCeiling))
	}
	tight := newProber(stallPause, stallCeiling)
	for range 10 {
		tight.pong(-1, ms)
	}
	_, bound, _, _ = tight.start(0, 0, 0, ceiling)
	if at, _ := tight.stallAt(0); at != bound {
		t.Fatalf("stall at %v, past the probe's bound %v", time.Duration(at), time.Duration(bound))
	}
}

// An open the peer does not answer, nor the probe it set off, tells its
// OnStall callback once the stall bound passes with nothing heard (1ms
// earlier it has not), well before the probe's verdict, and the session is
// Stalled from then on; the open goes on waiting, and the peer's late
// CONFIRM still opens the stream and ends the stall.
func TestStallNoticeAtBound(t *testing.T) {
	const hb, deadAfter = 500 * time.Millisecond, time.Hour
	fc := newFakeClock()
	s, p := fakePeer(t, transports[0], Config{Clock: fc, HeartbeatInterval: hb, DeadAfter: deadAfter})
	warmSession(t, fc, s, p, hb)
	var notices atomic.Int32
	ctx := OnStall(context.Background(), func() { notices.Add(1) })
	opened := make(chan error, 1)
	go func() { _, err := s.Open(ctx, []byte("h")); opened <- err }()
	open := p.next(t, typeOpen)
	after := s.suspectAfter()
	fc.waitArmedAt(t, fc.Now().Add(after))
	fc.Step(after)
	p.next(t, typeProbe)
	s.probe.mu.Lock()
	stall, bound := time.Duration(s.probe.stall), time.Duration(s.probe.bound)
	s.probe.mu.Unlock()
	if stall < hb/10 || stall > hb/2 || stall >= bound {
		t.Fatalf("stall bound %v, want within [HeartbeatInterval/10, /2] and under the probe's bound %v", stall, bound)
	}
	fc.waitArmedAt(t, fc.Now().Add(stall))
	fc.Step(stall - time.Millisecond)
	if n := notices.Load(); n != 0 || s.Stalled() || !s.Suspect() {
		t.Fatalf("1ms before the stall bound: %d stall notices, stalled %v, suspect %v", n, s.Stalled(), s.Suspect())
	}
	fc.Step(time.Millisecond)
	eventually(t, 10*time.Second, "the stall notice", func() bool { return notices.Load() == 1 })
	if !s.Stalled() {
		t.Fatal("not stalled at the stall bound")
	}
	select {
	case err := <-opened:
		t.Fatalf("the open ended at the stall notice: %v", err)
	default:
	}
	p.Write(rawFrame(typeConfirm, open.id, be32(1<<20)))
	if err := waitErr(t, opened); err != nil {
		t.Fatalf("open confirmed after the stall notice: %v", err)
	}
	if n := notices.Load(); n != 1 || s.Stalled() {
		t.Fatalf("after the CONFIRM: %d stall notices (want 1), stalled %v", n, s.Stalled())
	}
}

// Over real loopback TCP, with DeadAfter an hour: a peer that stops
// reading and writing (SIGSTOP as the link sees it) sets off the stall
// notice of an open while the open still waits (at the stall bound, or at
// the latest with a verdict if this process was starved past both). The
// verdicts do not fail that open: once the peer runs again, it confirms
// it.
func TestStallNoticeFindsFrozenPeer(t *testing.T) {
	c, s, fb := frozenSessions(t, Config{HeartbeatInterval: 100 * time.Millisecond, DeadAfter: time.Hour})
	go confirmAll(s)
	fb.freeze()
	noticed := make(chan struct{})
	ctx := OnStall(ctxT(t), func() { close(noticed) })
	opened := make(chan error, 1)
	go func() { _, err := c.Open(ctx, []byte("frozen")); opened <- err }()
	select {
	case <-noticed:
	case err := <-opened:
		t.Fatalf("open to the frozen peer ended without a stall notice: %v", err)
	}
	// Past the probe's verdict: still waiting.
	eventually(t, 30*time.Second, "the probe judged unanswered", func() bool { return c.Stalled() && !c.probe.suspect() })
	select {
	case err := <-opened:
		t.Fatalf("open to the frozen peer ended at the verdict: %v", err)
	default:
	}
	fb.thaw()
	if err := waitErr(t, opened); err != nil {
		t.Fatalf("open confirmed after the thaw: %v", err)
	}
	alive(t, c, "after the thaw")
}

// Past its stall bound a link is Stalled, and Silent counts from the last
// frame read; but not Stalled while the peer's frames wait in the socket
// for this side's read loop: then this process is behind, not the peer,
// as on a loaded machine where the balancer would otherwise rank a live
// peer with a frozen one.
func TestStalledNotWhileInputQueued(t *testing.T) {
	const hb = 500 * time.Millisecond
	s, p, fs, fc := queueableSession(t, hb)
	warmSession(t, fc, s, p, hb)
	last := fc.since() // the last PONG was read at this instant
	go s.Open(ctxT(t), []byte("h"))
	p.next(t, typeOpen)
	after := s.suspectAfter()
	fc.waitArmedAt(t, fc.Now().Add(after))
	fc.Step(after)
	p.next(t, typeProbe)
	s.probe.mu.Lock()
	stall := time.Duration(s.probe.stall)
	s.probe.mu.Unlock()
	fc.Step(stall)
	if !s.Stalled() {
		t.Fatal("not stalled at the stall bound")
	}
	if got, want := s.Silent(), fc.since()-last; got != want {
		t.Fatalf("silent for %v, want %v", got, want)
	}
	queueInput(t, fs, p)
	if s.Stalled() || !s.Suspect() {
		t.Fatalf("with the peer's PING in the socket: stalled %v (want false), suspect %v (want true)", s.Stalled(), s.Suspect())
	}
	if got, want := s.Silent(), fc.since()-last; got != want {
		t.Fatalf("silent for %v before the read loop took the PING, want %v", got, want)
	}
}

// A peer silent for HeartbeatInterval and half again is Overdue (1ms
// earlier it is not), with no probe sent and no verdict; not while its
// frames wait in the socket for this side's read loop.
func TestOverdue(t *testing.T) {
	const hb = 500 * time.Millisecond
	s, p, fs, fc := queueableSession(t, hb)
	p.waitPing(t, 0)
	fc.Step(hb)
	p.waitPing(t, hb)
	fc.Step(hb/2 - time.Millisecond)
	if s.Overdue() {
		t.Fatalf("overdue after %v of silence", s.Silent())
	}
	fc.Step(2 * time.Millisecond)
	if !s.Overdue() || s.Suspect() {
		t.Fatalf("after %v of silence: overdue %v (want true), suspect %v (want false: nothing judged)", s.Silent(), s.Overdue(), s.Suspect())
	}
	queueInput(t, fs, p)
	if s.Overdue() {
		t.Fatal("overdue while the peer's PING waits in the socket")
	}
}

// queueableSession is fakePeer on a fake clock over loopback TCP whose
// session end fs can hold its reads (queueInput), with DeadAfter an hour;
// it skips the test where SIOCINQ is missing.
func queueableSession(t *testing.T, hb time.Duration) (*Session, *rawPeer, *frozenConn, *fakeClock) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("SIOCINQ is Linux's")
	}
	var fs *frozenConn
	fc := newFakeClock()
	s, p := fakePeer(t, frozenSessionTCP(&fs), Config{Clock: fc, HeartbeatInterval: hb, DeadAfter: time.Hour})
	t.Cleanup(func() { fs.thaw() }) // before fakePeer's cleanup waits for the read loop
	return s, p, fs, fc
}
