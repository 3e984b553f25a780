package link

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// Both clocks a Config takes.
var (
	_ clock.WithTickerAndDelayedExecution = clock.RealClock{}
	_ clock.WithTickerAndDelayedExecution = (*clocktesting.FakeClock)(nil)
	_ clock.WithTickerAndDelayedExecution = (*fakeClock)(nil)
)

// epoch is where fake clocks start; any fixed instant does.
var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is k8s's FakeClock that also remembers when each one-shot timer
// it handed out is due, so a test can wait until a session has armed (or
// re-armed) the timer it is about to trip before it steps the clock.
// FakeClock.HasWaiters cannot tell that apart: a fake ticker's Stop is a
// no-op, so the PING ticker stays registered for good and HasWaiters is true
// from the first session on.
type fakeClock struct {
	*clocktesting.FakeClock
	mu  sync.Mutex
	due map[*trackedTimer]time.Time // armed timers; Stop removes them
}

func newFakeClock() *fakeClock { return onFakeClock(clocktesting.NewFakeClock(epoch)) }

// onFakeClock tracks the timers of one session on a clock shared with
// others, so a test can wait for that session's timers alone.
func onFakeClock(fc *clocktesting.FakeClock) *fakeClock {
	return &fakeClock{FakeClock: fc, due: make(map[*trackedTimer]time.Time)}
}

type trackedTimer struct {
	clock.Timer
	c *fakeClock
}

// track registers a new timer under mu, like Reset.
func (c *fakeClock) track(d time.Duration, start func() clock.Timer) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &trackedTimer{Timer: start(), c: c}
	c.due[t] = c.Now().Add(d)
	return t
}

func (c *fakeClock) NewTimer(d time.Duration) clock.Timer {
	return c.track(d, func() clock.Timer { return c.FakeClock.NewTimer(d) })
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return c.track(d, func() clock.Timer { return c.FakeClock.AfterFunc(d, f) })
}

// Stop and Reset hold mu while they change the fake timer, so a test that
// saw the new due time steps only after the fake timer has it too. Lock
// order: fakeClock.mu, then the FakeClock's own lock.
//
// Both also drop a firing nobody received, as real timers do since Go
// 1.23, which the session relies on. k8s's fake keeps it in the timer's
// one-slot channel, and the next firing then blocks FakeClock.Step while
// it holds the clock's lock, which the session needs to read the time
// before it can drain the channel: a deadlock.
func (t *trackedTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	delete(t.c.due, t)
	active := t.Timer.Stop()
	t.drain()
	return active
}

func (t *trackedTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.c.due[t] = t.c.Now().Add(d)
	t.drain()
	return t.Timer.Reset(d)
}

func (t *trackedTimer) drain() {
	select {
	case <-t.C():
	default:
	}
}

// armedAt reports whether a timer is armed to fire at at, still ahead.
func (c *fakeClock) armedAt(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !at.After(c.Now()) {
		return false
	}
	for _, d := range c.due {
		if d.Equal(at) {
			return true
		}
	}
	return false
}

// armed reports whether some timer is armed for a time still ahead.
func (c *fakeClock) armed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.Now()
	for _, d := range c.due {
		if d.After(now) {
			return true
		}
	}
	return false
}

func (c *fakeClock) waitArmedAt(t testing.TB, at time.Time) {
	t.Helper()
	eventually(t, 10*time.Second, "a timer armed for "+at.Sub(epoch).String()+" after epoch", func() bool {
		return c.armedAt(at)
	})
}

// since is the fake time passed since epoch, which is also the now() of a
// session started before the first Step.
func (c *fakeClock) since() time.Duration { return c.Since(epoch) }

// rawPeer is the far end of a session, written frame by frame by the test;
// what the session sends is parsed and handed over on frames.
type rawPeer struct {
	net.Conn
	frames chan rawIn
}

type rawIn struct {
	t       frameType
	id      uint32
	payload []byte
}

// fakePeer starts a Server on one end of tr and gives the test the other.
func fakePeer(t *testing.T, tr transport, cfg Config) (*Session, *rawPeer) {
	a, b := tr.pair(t)
	s := Server(a, cfg)
	p := &rawPeer{Conn: b, frames: make(chan rawIn, 4096)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		br := bufio.NewReader(b)
		var hdr [hdrSize]byte
		for {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return
			}
			ft, id, n, err := checkHeader(hdr[:])
			if err != nil {
				t.Errorf("session sent a bad frame: %v", err)
				return
			}
			f := rawIn{t: ft, id: id, payload: make([]byte, n)}
			if _, err := io.ReadFull(br, f.payload); err != nil {
				return
			}
			select {
			case p.frames <- f:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		// Closing the peer first ends the session without Close's wait for
		// GOAWAY, which would run on the fake clock nobody steps any more.
		b.Close()
		close(stop)
		waitDone(t, s)
		s.Close()
		s.wg.Wait()
		wg.Wait()
	})
	return s, p
}

// next returns the next frame of type ft the session sent, skipping others.
func (p *rawPeer) next(t testing.TB, ft frameType) rawIn {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case f := <-p.frames:
			if f.t == ft {
				return f
			}
		case <-timeout.C:
			t.Fatalf("no %v from the session", ft)
		}
	}
}

// waitPing waits for the PING the session stamped at (its now()).
func (p *rawPeer) waitPing(t testing.TB, at time.Duration) rawIn {
	t.Helper()
	for {
		f := p.next(t, typePing)
		if time.Duration(binary.BigEndian.Uint64(f.payload)) == at {
			return f
		}
	}
}

func (p *rawPeer) send(t testing.TB, ft frameType, payload []byte) {
	t.Helper()
	if _, err := p.Write(rawFrame(ft, 0, payload)); err != nil {
		t.Fatal(err)
	}
}

// pingPong sends a PING and waits for its PONG: once it returns, the
// session's read loop has taken the PING in.
func (p *rawPeer) pingPong(t testing.TB, stamp uint64) {
	t.Helper()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], stamp)
	p.send(t, typePing, b[:])
	for {
		f := p.next(t, typePong)
		if binary.BigEndian.Uint64(f.payload) == stamp {
			return
		}
	}
}

func alive(t testing.TB, s *Session, when string) {
	t.Helper()
	select {
	case <-s.Done():
		t.Fatalf("%s: session closed: %v", when, s.Err())
	default:
	}
}

// A session is declared dead exactly when no frame arrived for DeadAfter:
// alive 1ms before, dead at DeadAfter, and any frame restarts the count.
func TestDeadPeer(t *testing.T) {
	forTransports(t, func(t *testing.T, tr transport) {
		const hb, deadAfter, ms = 250 * time.Millisecond, time.Second, time.Millisecond
		fc := newFakeClock()
		s, p := fakePeer(t, tr, Config{Clock: fc, HeartbeatInterval: hb, DeadAfter: deadAfter})
		// The timers exist once Server returns, counting from the start.
		if !fc.HasWaiters() {
			t.Fatal("session started without timers")
		}
		fc.waitArmedAt(t, epoch.Add(deadAfter))

		fc.Step(deadAfter - ms)
		// A PING stamped now: the heartbeat loop has run since the step.
		p.waitPing(t, deadAfter-ms)
		alive(t, s, "DeadAfter-1ms after the start")
		if !fc.armedAt(epoch.Add(deadAfter)) {
			t.Fatal("dead-peer timer moved though nothing arrived")
		}

		// A frame now restarts the count from this instant.
		lastFrame := fc.since()
		p.pingPong(t, 7)
		fc.Step(ms) // the first deadline passes 1ms after the PING
		fc.waitArmedAt(t, epoch.Add(lastFrame+deadAfter))
		alive(t, s, "DeadAfter after the start, 1ms after a PING")

		fc.Step(lastFrame + deadAfter - ms - fc.since())
		alive(t, s, "DeadAfter-1ms after the PING")

		fc.Step(ms)
		waitDone(t, s)
		if !errors.Is(s.Err(), ErrPeerDead) {
			t.Fatalf("err %v, want ErrPeerDead", s.Err())
		}
		if !strings.Contains(s.Err().Error(), "silent for 1s") {
			t.Fatalf("err %v, want silent for exactly DeadAfter", s.Err())
		}
	})
}

// Heartbeats alone keep an idle link alive across many DeadAfter periods.
func TestHeartbeatsKeepIdleLinkAlive(t *testing.T) {
	forTransports(t, func(t *testing.T, tr transport) {
		const hb, deadAfter, periods = 250 * time.Millisecond, time.Second, 20
		base := clocktesting.NewFakeClock(epoch)
		cc, sc := onFakeClock(base), onFakeClock(base)
		c, s := sessions(t, tr,
			Config{Clock: cc, HeartbeatInterval: hb, DeadAfter: deadAfter},
			Config{Clock: sc, HeartbeatInterval: hb, DeadAfter: deadAfter})
		for range periods * int(deadAfter/hb) {
			// Settled before time moves on: each side heard from the
			// other at this instant, and its dead-peer timer is armed
			// ahead (re-armed if it just came due).
			eventually(t, 10*time.Second, "both sides settled at "+cc.since().String(), func() bool {
				now := int64(cc.since())
				return c.lastRecv.Load() == now && s.lastRecv.Load() == now && cc.armed() && sc.armed()
			})
			base.Step(hb)
			alive(t, c, "client at "+cc.since().String())
			alive(t, s, "server at "+cc.since().String())
		}
		if got := cc.since(); got != periods*deadAfter {
			t.Fatalf("fake time %v", got)
		}
		if c.RTT() == 0 || s.RTT() == 0 {
			t.Fatalf("no RTT sample: %v / %v", c.RTT(), s.RTT())
		}
	})
}

// RTT is the time between PING and PONG on the session's clock.
func TestRTTFromClock(t *testing.T) {
	fc := newFakeClock()
	s, p := fakePeer(t, transports[0], Config{Clock: fc, HeartbeatInterval: time.Hour, DeadAfter: 2 * time.Hour})
	ping := p.waitPing(t, 0) // sent at the start
	fc.Step(37 * time.Millisecond)
	p.send(t, typePong, ping.payload)
	eventually(t, 10*time.Second, "first RTT sample", func() bool { return s.RTT() != 0 })
	if got := s.RTT(); got != 37*time.Millisecond {
		t.Fatalf("RTT %v, want 37ms", got)
	}

	fc.Step(time.Hour - 37*time.Millisecond) // the next tick
	ping = p.waitPing(t, time.Hour)
	fc.Step(5 * time.Millisecond)
	p.send(t, typePong, ping.payload)
	const want = 37*time.Millisecond - 37*time.Millisecond/8 + 5*time.Millisecond/8 // EWMA 1/8
	eventually(t, 10*time.Second, "second RTT sample", func() bool { return s.RTT() != 37*time.Millisecond })
	if got := s.RTT(); got != want {
		t.Fatalf("RTT %v, want %v", got, want)
	}
}

// Close waits goAwayWait on the session's clock for a GOAWAY it cannot
// write, then closes anyway.
func TestCloseGoAwayWaitOnClock(t *testing.T) {
	fc := newFakeClock()
	a, b := net.Pipe()
	defer b.Close()
	sc := &stuckConn{Conn: a, entered: make(chan struct{}), closed: make(chan struct{})}
	s := Server(sc, Config{Clock: fc, HeartbeatInterval: time.Hour, DeadAfter: time.Hour})
	// Once the writer is stuck in its first write, GOAWAY cannot be
	// written (not even into the writer's buffer, which counts as sent).
	select {
	case <-sc.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the session never wrote")
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	fc.waitArmedAt(t, epoch.Add(goAwayWait))
	fc.Step(goAwayWait - time.Millisecond)
	select {
	case <-closed:
		t.Fatal("Close returned before goAwayWait with its GOAWAY unwritten")
	default:
	}
	fc.Step(time.Millisecond)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close still waiting after goAwayWait on the session's clock")
	}
	if !errors.Is(s.Err(), ErrSessionClosed) {
		t.Fatalf("err %v", s.Err())
	}
	s.wg.Wait()
}

// stuckConn blocks every Write until it is closed, like a peer whose
// receive window stays shut.
type stuckConn struct {
	net.Conn
	enterOnce, closeOnce sync.Once
	entered, closed      chan struct{}
}

func (c *stuckConn) Write([]byte) (int, error) {
	c.enterOnce.Do(func() { close(c.entered) })
	<-c.closed
	return 0, net.ErrClosed
}

func (c *stuckConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// Stream deadlines are read on the session's clock; one re-armed after it
// fired must not wedge the fake clock.
func TestDeadlinesOnClock(t *testing.T) {
	fc := newFakeClock()
	cfg := Config{Clock: fc, HeartbeatInterval: time.Hour, DeadAfter: 2 * time.Hour, StreamWindow: 64 << 10}
	c, s := sessions(t, transports[0], cfg, cfg)
	a, b := openPair(t, c, s, nil)
	buf := make([]byte, 1)

	dl := fc.Now().Add(100 * time.Millisecond)
	a.SetReadDeadline(dl)
	fc.waitArmedAt(t, dl)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(buf)
		errc <- err
	}()
	fc.Step(99 * time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("read returned before its deadline: %v", err)
	default:
	}
	fc.Step(time.Millisecond)
	if err := waitErr(t, errc); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read at its deadline: %v", err)
	}

	// Re-armed after firing: the next firing must get through Step.
	dl = fc.Now().Add(50 * time.Millisecond)
	a.SetReadDeadline(dl)
	fc.Step(50 * time.Millisecond)
	if _, err := a.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past a re-armed deadline: %v", err)
	}
	a.SetReadDeadline(time.Time{})
	b.Write([]byte("z"))
	if _, err := io.ReadFull(a, buf); err != nil {
		t.Fatal(err)
	}

	// A write waiting for credit gives up at its deadline.
	dl = fc.Now().Add(100 * time.Millisecond)
	b.SetWriteDeadline(dl)
	fc.waitArmedAt(t, dl)
	type res struct {
		n   int
		err error
	}
	wres := make(chan res, 1)
	go func() {
		n, err := b.Write(make([]byte, 1<<20))
		wres <- res{n, err}
	}()
	fc.Step(100 * time.Millisecond)
	select {
	case r := <-wres:
		if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.n != 64<<10-1 {
			t.Fatalf("write deadline: n=%d %v", r.n, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write not ended by its deadline")
	}
}

// The read loop stamps every frame with now(): with the real clock that
// must stay free of allocations (and of locks: RealClock has none).
func TestNowDoesNotAllocate(t *testing.T) {
	s := &Session{cfg: Config{}.withDefaults(), start: time.Now()}
	if n := testing.AllocsPerRun(1000, func() { s.now() }); n != 0 {
		t.Fatalf("now() allocates %v times", n)
	}
}

func waitErr(t testing.TB, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("still blocked")
		return nil
	}
}
