package link

import (
	"context"
	"runtime"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

func TestDetectorNeedsSamples(t *testing.T) {
	d := newDetector()
	for i := range int64(detectorMinSamples) { // one arrival short of the samples
		d.ping(i * 500 * ms)
		if got := d.timeout(125*ms, 25*ms, 2000*ms); got != 2000*ms {
			t.Fatalf("after %d PINGs timeout %v, want DeadAfter until %d intervals", i+1, time.Duration(got), detectorMinSamples)
		}
	}
	d.ping(detectorMinSamples * 500 * ms)
	// Regular PINGs: the mean, the pause and phiSigmas of the floor.
	if got, want := d.timeout(125*ms, 25*ms, 2000*ms), 500*ms+int64(phiSigmas*25*float64(ms))+125*ms; got != want {
		t.Fatalf("timeout %v, want %v", time.Duration(got), time.Duration(want))
	}
	// Out of order or repeated stamps add no interval.
	d.ping(detectorMinSamples * 500 * ms)
	if d.intervals.n != detectorMinSamples {
		t.Fatalf("%d intervals after a repeated stamp", d.intervals.n)
	}
}

func TestDetectorJitterWidensTimeout(t *testing.T) {
	d := newDetector()
	now := int64(0)
	d.ping(now)
	// PINGs alternately 300 and 700 ms apart: mean 500, sigma 200.
	for i := range 20 {
		now += []int64{300 * ms, 700 * ms}[i%2]
		d.ping(now)
	}
	if got, want := d.timeout(0, 25*ms, 10_000*ms), 500*ms+int64(phiSigmas*200*float64(ms)); got != want {
		t.Fatalf("timeout %v, want %v", time.Duration(got), time.Duration(want))
	}
	if got := d.timeout(0, 25*ms, 1000*ms); got != 1000*ms {
		t.Fatalf("timeout %v beyond the ceiling", time.Duration(got))
	}
	// The window forgets: after detectorWindow regular intervals the
	// jitter is gone.
	for range detectorWindow {
		now += 500 * ms
		d.ping(now)
	}
	if got, want := d.timeout(0, 25*ms, 10_000*ms), 500*ms+int64(phiSigmas*25*float64(ms)); got != want {
		t.Fatalf("timeout %v after a regular window, want %v", time.Duration(got), time.Duration(want))
	}
}

// warmDetector has the raw peer PING every hb, the session's ticker ticking
// with it, until the session has learnt the peer's rhythm. Time moves on
// only once the session has sent its PING for the tick (it re-arms its
// timer before, from the time it read) and read the peer's. It returns the
// limit learnt.
func warmDetector(t *testing.T, fc *fakeClock, s *Session, p *rawPeer, hb, deadAfter time.Duration) time.Duration {
	t.Helper()
	for i := range detectorMinSamples + 1 {
		if i > 0 {
			fc.Step(hb)
		}
		p.waitPing(t, fc.since())
		p.pingPong(t, uint64(i))
	}
	limit := time.Duration(s.det.timeout(int64(hb/4), int64(hb/20), int64(deadAfter)))
	if want := hb + time.Duration(phiSigmas*float64(hb/20)) + hb/4; limit != want {
		t.Fatalf("limit %v, want %v", limit, want)
	}
	return limit
}

// stepSilent steps fc to at, stopping at each PING tick of the session
// until it sent its PING, and checks that s stays open throughout.
func stepSilent(t *testing.T, fc *fakeClock, s *Session, p *rawPeer, hb, at time.Duration) {
	t.Helper()
	for fc.since() < at {
		next := min((fc.since()/hb+1)*hb, at)
		fc.Step(next - fc.since())
		if fc.since()%hb == 0 {
			p.waitPing(t, fc.since())
		}
		alive(t, s, "at "+fc.since().String())
	}
}

// Once the peer's PINGs were measured, a silence longer than their rhythm
// allows (mean+pause+phiSigmas*sigma after the last frame, well before
// DeadAfter) makes the link suspect and nothing more: the session stays
// open, a frame from the peer clears the suspicion, and only DeadAfter of
// silence closes it.
func TestLearntLimitOnlySuspects(t *testing.T) {
	forTransports(t, func(t *testing.T, tr transport) {
		const hb, deadAfter = 500 * time.Millisecond, 2 * time.Second
		fc := newFakeClock()
		s, p := fakePeer(t, tr, Config{Clock: fc, HeartbeatInterval: hb, DeadAfter: deadAfter})
		warmDetector(t, fc, s, p, hb, deadAfter)
		for round := range 2 {
			last := fc.since()
			// The peer's late PING of round 0 widens the limit of round 1.
			limit := time.Duration(s.det.timeout(int64(hb/4), int64(hb/20), int64(deadAfter)))
			// The timer, armed for DeadAfter, is re-armed for the
			// learnt limit at the next tick.
			stepSilent(t, fc, s, p, hb, last+limit-time.Millisecond)
			if s.Suspect() {
				t.Fatalf("round %d: suspect 1ms before the learnt limit", round)
			}
			fc.waitArmedAt(t, epoch.Add(last+limit))
			fc.Step(time.Millisecond)
			// Judged: the timer is re-armed for DeadAfter.
			waitArmedOrDone(t, fc, s, epoch.Add(last+deadAfter))
			alive(t, s, "at the learnt limit")
			if !s.Suspect() {
				t.Fatalf("round %d: not suspect at the learnt limit", round)
			}
			if round == 0 {
				// The peer speaks again.
				p.pingPong(t, 100)
				if s.Suspect() {
					t.Fatal("still suspect after a frame from the peer")
				}
				continue
			}
			stepSilent(t, fc, s, p, hb, last+deadAfter-time.Millisecond)
			if !s.Suspect() {
				t.Fatal("suspicion cleared without a frame")
			}
			fc.Step(time.Millisecond)
			waitDead(t, s, "silent for 2s")
		}
	})
}

// While the socket holds bytes the read loop has not taken (it is starved,
// played by a conn that holds what it read and reads no more), the peer
// was not silent: the learnt limit does not make the link suspect.
func TestQueuedInputIsNotSilence(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SIOCINQ is Linux's")
	}
	const hb, deadAfter = 500 * time.Millisecond, 2 * time.Second
	var fs *frozenConn
	fc := newFakeClock()
	s, p := fakePeer(t, frozenSessionTCP(&fs), Config{Clock: fc, HeartbeatInterval: hb, DeadAfter: deadAfter})
	t.Cleanup(func() { fs.thaw() }) // before fakePeer's cleanup waits for the read loop
	limit := warmDetector(t, fc, s, p, hb, deadAfter)
	last := fc.since()
	queueInput(t, fs, p)
	// The session's own PINGs are held too: wait for its timers instead.
	fc.Step(hb)
	fc.waitArmedAt(t, epoch.Add(last+limit))
	fc.Step(limit - hb)
	fc.waitArmedAt(t, epoch.Add(last+deadAfter))
	if s.Suspect() {
		t.Fatal("suspect while the socket held the peer's frames")
	}
	fs.thaw()
	eventually(t, 10*time.Second, "the queued PINGs read", func() bool { return s.lastRecv.Load() > int64(last) })
	alive(t, s, "after the thaw")
}

// An open waiting for its answer when the peer's silence outlasts its
// PING rhythm fails with ErrPeerUnresponsive, so that the caller takes it
// elsewhere, as it did when the session was closed then; the session stays
// open. The peer never answers the session's PINGs here, so no probe can
// be sent: only the learnt limit decides.
func TestOpenFailsAtLearntLimit(t *testing.T) {
	const hb, deadAfter = 500 * time.Millisecond, 2 * time.Second
	fc := newFakeClock()
	s, p := fakePeer(t, transports[0], Config{Clock: fc, HeartbeatInterval: hb, DeadAfter: deadAfter})
	limit := warmDetector(t, fc, s, p, hb, deadAfter)
	last := fc.since()
	opened := make(chan error, 1)
	go func() { _, err := s.Open(context.Background(), []byte("h")); opened <- err }()
	open := p.next(t, typeOpen)
	stepSilent(t, fc, s, p, hb, last+limit-time.Millisecond)
	select {
	case err := <-opened:
		t.Fatalf("open ended before the learnt limit: %v", err)
	default:
	}
	fc.waitArmedAt(t, epoch.Add(last+limit))
	fc.Step(time.Millisecond)
	waitUnresponsive(t, s, p, opened, open.id)
}
