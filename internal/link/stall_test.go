package link

import (
	"errors"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// Stops of this process (SIGSTOP, a VM pause, CPU starvation) are played by
// stepping the fake clock over the dead-peer deadline in one step: the
// heartbeat loop then wakes once, late, as it does after SIGCONT.

const stallHB, stallDeadAfter = 250 * time.Millisecond, time.Second

// waitArmedOrDone waits until a timer is armed for at or the session
// closed, so a test of a session that wrongly closes fails at once instead
// of waiting out a timer that never comes.
func waitArmedOrDone(t testing.TB, fc *fakeClock, s *Session, at time.Time) {
	t.Helper()
	eventually(t, 10*time.Second, "a timer armed for "+at.Sub(epoch).String()+" after epoch, or the session closed", func() bool {
		select {
		case <-s.Done():
			return true
		default:
			return fc.armedAt(at)
		}
	})
}

// A stop across the deadline is no verdict on the peer: what it sent
// meanwhile reaches the read loop only after the timer fired, and the
// session must take it instead of declaring the peer dead. Both ways of
// telling the stop are covered: the timer fires late (a long stop), or it
// looks punctual but the heartbeat loop slept through its PING ticks (a
// stop that ended just after the deadline).
func TestStoppedProcessKeepsLivePeer(t *testing.T) {
	for _, stop := range []struct {
		name string
		d    time.Duration
	}{
		{"long", 3 * time.Second},
		{"ending just after the deadline", stallDeadAfter + time.Millisecond},
	} {
		t.Run(stop.name, func(t *testing.T) {
			forTransports(t, func(t *testing.T, tr transport) {
				fc := newFakeClock()
				s, p := fakePeer(t, tr, Config{Clock: fc, HeartbeatInterval: stallHB, DeadAfter: stallDeadAfter})
				fc.waitArmedAt(t, epoch.Add(stallDeadAfter))

				fc.Step(stop.d)
				// The grace: the timer re-armed one heartbeat on.
				waitArmedOrDone(t, fc, s, epoch.Add(stop.d+stallHB))
				alive(t, s, "when the timer fired after the stop")

				// Only now does the read loop get what the peer sent.
				p.pingPong(t, 7)
				fc.Step(stallHB)
				// Judged at the end of the grace: the PING counts, and the
				// next deadline is DeadAfter after it.
				waitArmedOrDone(t, fc, s, epoch.Add(stop.d+stallDeadAfter))
				alive(t, s, "at the end of the grace")
			})
		})
	}
}

// A silent peer is still declared dead after a stop, one heartbeat after
// this process runs again; the grace is given once per silence, so a
// second stop during it does not extend it.
func TestStoppedProcessDeclaresSilentPeerDead(t *testing.T) {
	const ms = time.Millisecond
	forTransports(t, func(t *testing.T, tr transport) {
		t.Run("after the grace", func(t *testing.T) {
			fc := newFakeClock()
			s, _ := fakePeer(t, tr, Config{Clock: fc, HeartbeatInterval: stallHB, DeadAfter: stallDeadAfter})
			fc.waitArmedAt(t, epoch.Add(stallDeadAfter))
			fc.Step(3 * time.Second)
			waitArmedOrDone(t, fc, s, epoch.Add(3*time.Second+stallHB))
			alive(t, s, "when the timer fired after the stop")
			fc.Step(stallHB - ms)
			alive(t, s, "1ms before the end of the grace")
			fc.Step(ms)
			waitDead(t, s, "silent for 3.25s")
		})
		t.Run("stopped again during the grace", func(t *testing.T) {
			fc := newFakeClock()
			s, _ := fakePeer(t, tr, Config{Clock: fc, HeartbeatInterval: stallHB, DeadAfter: stallDeadAfter})
			fc.waitArmedAt(t, epoch.Add(stallDeadAfter))
			fc.Step(3 * time.Second)
			waitArmedOrDone(t, fc, s, epoch.Add(3*time.Second+stallHB))
			alive(t, s, "when the timer fired after the stop")
			fc.Step(5 * time.Second)
			waitDead(t, s, "silent for 8s")
		})
	})
}

// A timer a little late in a running process (less than a tenth of a
// heartbeat, with every PING tick taken) judges at once: no grace.
func TestDeadPeerTimerJitter(t *testing.T) {
	forTransports(t, func(t *testing.T, tr transport) {
		fc := newFakeClock()
		s, p := fakePeer(t, tr, Config{Clock: fc, HeartbeatInterval: stallHB, DeadAfter: stallDeadAfter})
		fc.waitArmedAt(t, epoch.Add(stallDeadAfter))
		for at := stallHB; at < stallDeadAfter; at += stallHB {
			fc.Step(stallHB)
			p.waitPing(t, at) // the heartbeat loop woke for this tick
		}
		fc.Step(stallHB + 10*time.Millisecond)
		waitDead(t, s, "silent for 1.01s")
	})
}

func waitDead(t testing.TB, s *Session, silent string) {
	t.Helper()
	waitDone(t, s)
	if err := s.Err(); !errors.Is(err, ErrPeerDead) || !strings.Contains(err.Error(), silent) {
		t.Fatalf("err %v, want ErrPeerDead %s", err, silent)
	}
}

// A peer that stalls for longer than its PING rhythm allows but less than
// DeadAfter (GC, CPU starvation: played by a conn that neither hands on
// what it read nor writes) makes the link suspect, not dead: the stream
// open across the stall survives and carries data both ways once the peer
// runs again, which also clears the suspicion.
func TestStalledPeerKeepsStreams(t *testing.T) {
	const hb, deadAfter = stallHB, stallDeadAfter
	var fb *frozenConn
	base := clocktesting.NewFakeClock(epoch)
	cc, sc := onFakeClock(base), onFakeClock(base)
	c, s := sessions(t, frozenServerTCP(&fb),
		Config{Clock: cc, HeartbeatInterval: hb, DeadAfter: deadAfter},
		Config{Clock: sc, HeartbeatInterval: hb, DeadAfter: deadAfter})
	t.Cleanup(func() { fb.thaw() }) // runs before the sessions close
	a, b := openPair(t, c, s, []byte("across the stall"))
	// Each side heard from the other at this instant, and its dead-peer
	// timer is armed ahead. After a step, each side's detector also took
	// the peer's PING of this instant: the PONG to its own PING may come
	// first, and a PING read only after the next step would teach the
	// detector an interval of two heartbeats.
	settled := func(pinged bool) {
		eventually(t, 10*time.Second, "both sides settled at "+cc.since().String(), func() bool {
			now := int64(cc.since())
			heard := !pinged || c.det.lastPing() == now && s.det.lastPing() == now
			return heard && c.lastRecv.Load() == now && s.lastRecv.Load() == now && cc.armed() && sc.armed()
		})
	}
	settled(false)
	for range detectorMinSamples + 1 {
		base.Step(hb)
		settled(true)
	}
	last := cc.since()
	limit := time.Duration(c.det.timeout(int64(hb/4), int64(hb/20), int64(deadAfter)))
	if limit >= deadAfter {
		t.Fatalf("learnt limit %v, not below DeadAfter %v", limit, deadAfter)
	}

	fb.freeze()
	base.Step(hb) // the tick re-arms the client's timer for the limit
	cc.waitArmedAt(t, epoch.Add(last+limit))
	base.Step(limit - hb)
	cc.waitArmedAt(t, epoch.Add(last+deadAfter))
	alive(t, c, "at the learnt limit")
	if !c.Suspect() {
		t.Fatal("not suspect at the learnt limit")
	}
	base.Step(deadAfter - limit - time.Millisecond)
	alive(t, c, "1ms before DeadAfter")
	alive(t, s, "the stalled side, 1ms before DeadAfter")

	fb.thaw()
	eventually(t, 10*time.Second, "suspicion cleared by the peer's frames", func() bool { return !c.Suspect() })
	streamCarries(t, a, b)
	streamCarries(t, b, a)
	alive(t, c, "after the stall")
	alive(t, s, "the stalled side, after the stall")
}

// lastPing is when the detector took the peer's last PING.
func (d *detector) lastPing() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}
