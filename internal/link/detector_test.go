package link

import (
	"errors"
	"strings"
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

// Once the peer's PINGs were measured, a silence is judged against their
// rhythm: alive 1ms before mean+pause+phiSigmas*sigma after the last
// frame, dead at it, well before DeadAfter.
func TestDeadPeerAdaptive(t *testing.T) {
	forTransports(t, func(t *testing.T, tr transport) {
		const hb, deadAfter = 500 * time.Millisecond, 2 * time.Second
		fc := newFakeClock()
		s, p := fakePeer(t, tr, Config{Clock: fc, HeartbeatInterval: hb, DeadAfter: deadAfter})
		// The peer PINGs every hb, and the session's own ticker ticks with
		// it; each PING is read before time moves on.
		for i := range detectorMinSamples + 1 {
			if i > 0 {
				fc.Step(hb)
			}
			p.pingPong(t, uint64(i))
		}
		last := fc.since()
		limit := time.Duration(s.det.timeout(int64(hb/4), int64(hb/20), int64(deadAfter)))
		if want := hb + time.Duration(phiSigmas*float64(hb/20)) + hb/4; limit != want {
			t.Fatalf("limit %v, want %v", limit, want)
		}
		// The peer stops: no more frames. The timer, armed before the
		// rhythm was known, is re-armed for the limit at the next tick.
		var at time.Duration
		for fc.since() < last+limit-time.Millisecond {
			next := min(fc.since()+hb, last+limit-time.Millisecond)
			fc.Step(next - fc.since())
			if fc.since()%hb == 0 {
				p.waitPing(t, fc.since())
			}
			alive(t, s, "at "+fc.since().String())
		}
		at = fc.since()
		fc.waitArmedAt(t, epoch.Add(last+limit))
		fc.Step(time.Millisecond)
		waitDone(t, s)
		if !errors.Is(s.Err(), ErrPeerDead) {
			t.Fatalf("err %v, want ErrPeerDead", s.Err())
		}
		if want := "silent for " + (at + time.Millisecond - last).Round(time.Millisecond).String() + "; limit " + limit.String(); !strings.Contains(s.Err().Error(), want) {
			t.Fatalf("err %v, want %s", s.Err(), want)
		}
	})
}
