// Package link is weft's stream multiplexer: many independent, flow-controlled
// streams plus an ordered control channel over one connection (mutual TLS
// between sites in production, any net.Conn in tests), with heartbeats that
// measure RTT and declare a silent peer dead. The wire format is in spec.md.
//
// Each Session runs three goroutines: a read loop that never blocks on a
// stream (every stream buffers up to its window, so a slow reader stalls only
// itself), a writer that drains a frame queue into a buffered writer and
// flushes when the queue runs dry (small frames coalesce into one write), and
// a heartbeat ticker. Over TLS on a BufferedConn (how sites make links), the
// TLS records of one such batch leave in one system call (bufconn.go).
//
// The session reads time only from Config.Clock (heartbeats, dead-peer
// detection, RTT, Close's GOAWAY wait, stream deadlines), so tests step a
// fake clock instead of sleeping.
//
// Lock order: Stream.mu, then Session.mu, then Session.wmu. wmu is a leaf.
package link

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/utils/clock"
)

// Buffer sizes of the connection, chosen by measurement (BENCH.md).
const (
	readBufSize  = 64 << 10
	writeBufSize = 64 << 10
)

// Config tunes a Session. The zero value is usable.
type Config struct {
	// HeartbeatInterval is the PING cadence; RTT is an EWMA of PING->PONG.
	// Default 500ms.
	HeartbeatInterval time.Duration
	// DeadAfter closes the session with ErrPeerDead when no frame at all
	// arrived for this long. Default 2s. Keep it at least twice the peer's
	// HeartbeatInterval. Once the peer's PINGs have been measured, a
	// silence well past their usual rhythm makes it suspect sooner (phi
	// accrual, spec.md), which routes new streams around it but closes
	// nothing. When this process was stopped across the deadline, the peer
	// gets one more HeartbeatInterval (spec.md).
	DeadAfter time.Duration
	// StreamWindow is each stream's receive window in bytes, which is also
	// the most a slow reader buffers. Default 4 MiB; clamped to
	// [64 KiB, 1 GiB].
	StreamWindow uint32
	// MaxStreams caps the streams of a session (both directions). Default
	// 65536.
	MaxStreams int
	// AcceptBacklog caps streams opened by the peer and not yet taken by
	// Accept; more are rejected with CodeBacklog. Default 256.
	AcceptBacklog int
	// OnControl receives control-channel messages in order, on the read
	// loop: it must not block long, and msg is the callee's to keep.
	OnControl func(msg []byte)
	// OnStream, if set, receives every stream the peer opens, on the read
	// loop, instead of Accept: it must not block (start a goroutine). It
	// saves the hand-off to a goroutine waiting in Accept per stream;
	// AcceptBacklog then does not apply, MaxStreams still does.
	OnStream func(st *Stream)
	// Logger gets session-level events (protocol violations, dead peer).
	Logger *slog.Logger
	// Clock is what the session reads time from: the PING ticker, the
	// DeadAfter timer, RTT samples, Close's wait for GOAWAY and stream
	// deadlines. Nil is the real clock. Stream deadlines are compared with
	// Clock.Now: with the real clock that is net.Conn's contract; under any
	// other clock, callers must take deadlines from it (Clock.Now().Add(d)),
	// or a deadline from time.Now is read on the wrong time line.
	Clock clock.WithTickerAndDelayedExecution
}

func (c Config) withDefaults() Config {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 500 * time.Millisecond
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 2 * time.Second
	}
	switch {
	case c.StreamWindow == 0:
		c.StreamWindow = defaultWindow
	case c.StreamWindow < minWindow:
		c.StreamWindow = minWindow
	case c.StreamWindow > maxWindow:
		c.StreamWindow = maxWindow
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = defaultStreams
	}
	if c.AcceptBacklog <= 0 {
		c.AcceptBacklog = defaultBacklog
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	return c
}

// Stats are cumulative counters, except StreamsActive.
type Stats struct {
	StreamsOpened   uint64 // opened here and confirmed by the peer
	StreamsAccepted uint64 // opened by the peer and queued for Accept
	StreamsActive   int64  // streams currently known to the session
	StreamsFailed   uint64 // rejected or reset, either side
	BytesSent       uint64 // stream payload bytes
	BytesReceived   uint64
}

// Session is one multiplexed connection. All methods are safe for
// concurrent use.
type Session struct {
	conn   net.Conn
	sock   syscall.RawConn // the socket under conn, for inputQueued; nil over a pipe
	cfg    Config
	log    *slog.Logger
	client bool
	start  time.Time // on cfg.Clock; now() counts from here
	done   chan struct{}
	wg     sync.WaitGroup

	acceptCh chan *Stream

	// mu guards the fields below it.
	mu      sync.Mutex
	streams map[uint32]*Stream
	nextID  uint64 // next ID this side opens
	peerID  uint32 // highest ID the peer opened
	closed  bool
	err     error // cause of the close
	cerr    error // what operations return after close; wraps ErrSessionClosed

	// wmu guards the write queue below it; it is a leaf lock.
	wmu     sync.Mutex
	wprio   []*frame
	wnormal []*frame
	wclosed bool
	wwake   chan struct{}
	// spareP and spareN are the queues' spare backing arrays, and fw the
	// connection's frame writer: all three belong to whoever holds wrole,
	// the writer role (cap 1), the writer goroutine or a writeFramesNow.
	spareP, spareN []*frame
	fw             frameWriter
	wrole          chan struct{}

	cerrP atomic.Pointer[error] // cerr, readable without mu
	// goingAway is the error of a GOAWAY this side sent: the peer may
	// close the connection before goAway closes the session, and the
	// session must then end with this error, not a lost connection.
	goingAway  atomic.Pointer[error]
	pongQueued atomic.Bool
	lastRecv   atomic.Int64                  // now() of the last frame read; 0 (start) before any
	det        *detector                     // the peer's PING rhythm, whose limit makes the link suspect
	quiet      atomic.Int64                  // lastRecv of the silence judged suspect; -1 before any
	silenced   atomic.Pointer[chan struct{}] // closed, and replaced, when quiet changes
	probe      *prober                       // on-demand probes of a peer slow to answer (probe.go)
	rtt        atomic.Int64

	// sinks: the read loop writes to streams' direct sinks (sink.go);
	// pending, the read loop's own, lists the streams it holds data for.
	sinks   bool
	pending []*Stream
	sinkW   sinkWriter

	nOpened, nAccepted, nFailed, nSent, nRecv atomic.Uint64
	nActive                                   atomic.Int64
}

// Client starts a session on the dialing side (odd stream IDs).
func Client(conn net.Conn, cfg Config) *Session { return newSession(conn, cfg, true) }

// Server starts a session on the accepting side (even stream IDs).
func Server(conn net.Conn, cfg Config) *Session { return newSession(conn, cfg, false) }

func newSession(conn net.Conn, cfg Config, client bool) *Session {
	cfg = cfg.withDefaults()
	s := &Session{
		conn:     conn,
		sock:     socketOf(conn),
		cfg:      cfg,
		client:   client,
		start:    cfg.Clock.Now(),
		done:     make(chan struct{}),
		acceptCh: make(chan *Stream, cfg.AcceptBacklog),
		streams:  make(map[uint32]*Stream),
		wwake:    make(chan struct{}, 1),
		wrole:    make(chan struct{}, 1),
		det:      newDetector(),
		probe:    newProber(int64(cfg.HeartbeatInterval)/10, int64(cfg.HeartbeatInterval)/2),
	}
	s.fw = frameWriter{bw: bufio.NewWriterSize(conn, writeBufSize), conn: conn, bc: batcher(conn)}
	s.quiet.Store(-1)
	s.silenced.Store(new(make(chan struct{})))
	if s.fw.bc != nil && directSinks {
		s.sinks = true
		s.fw.bc.beforeRead = s.flushSinks
	}
	side := "server"
	s.nextID = 2
	if client {
		side = "client"
		s.nextID = 1
	}
	s.log = cfg.Logger.With("link", side, "remote", addrString(conn.RemoteAddr()))
	// The heartbeat timers start here rather than in their goroutine, so they
	// count from start: a test stepping a fake clock right after Client or
	// Server returns cannot step past a timer that does not exist yet.
	tick := s.cfg.Clock.NewTicker(cfg.HeartbeatInterval)
	dead := s.cfg.Clock.NewTimer(cfg.DeadAfter)
	s.wg.Add(3)
	go s.readLoop()
	go s.writeLoop()
	go s.heartbeatLoop(tick, dead)
	return s
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// now is the session's monotonic time in ns since start, on its clock. The
// read loop calls it once per frame: with the real clock it is time.Since
// behind one interface call, no allocation and no lock.
func (s *Session) now() int64 { return int64(s.cfg.Clock.Since(s.start)) }

// Open opens a stream carrying header (at most MaxHeaderLen bytes) and
// blocks until the peer confirms it (nil error), rejects it (*RejectError),
// resets it (*ResetError), ctx ends, or the session closes.
func (s *Session) Open(ctx context.Context, header []byte) (*Stream, error) {
	if len(header) > MaxHeaderLen {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrTooLarge, len(header))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, s.cerr
	}
	if len(s.streams) >= s.cfg.MaxStreams {
		s.mu.Unlock()
		return nil, ErrTooManyStreams
	}
	if s.nextID > 0xffffffff {
		s.mu.Unlock()
		return nil, ErrStreamIDsExhausted
	}
	id := uint32(s.nextID)
	s.nextID += 2
	st := newStream(s, id, stateOpening, append([]byte(nil), header...))
	f := newCtlFrame(typeOpen, id, openPrefix+len(header))
	binary.BigEndian.PutUint32(f.payload, s.cfg.StreamWindow)
	copy(f.payload[openPrefix:], header)
	// A silence judged suspect once the OPEN is out fails it (waitOpen).
	silenced := *s.silenced.Load()
	// Queued under mu: the peer requires OPEN IDs to increase.
	if err := s.enqueue(f, false); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.streams[id] = st
	s.nActive.Add(1)
	s.mu.Unlock()
	if err := s.waitOpen(ctx, st, silenced); err != nil {
		st.Reset(CodeCanceled)
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.state == stateOpen && st.resetErr == nil && st.sessErr == nil:
		s.nOpened.Add(1)
		return st, nil
	case st.rejectErr != nil:
		return nil, st.rejectErr
	case st.resetErr != nil:
		return nil, st.resetErr
	default:
		return nil, st.sessErr
	}
}

// Accept returns the next stream opened by the peer, not yet confirmed: the
// caller must Confirm or Reject it. After the session closed it returns an
// error wrapping ErrSessionClosed. With Config.OnStream set it returns no
// stream, only that error once the session closed (or ctx's).
func (s *Session) Accept(ctx context.Context) (*Stream, error) {
	select {
	case <-s.done:
		return nil, s.closedErr()
	default:
	}
	select {
	case st := <-s.acceptCh:
		return st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, s.closedErr()
	}
}

// SendControl sends msg (at most MaxControlLen bytes) on the control
// channel; messages arrive in the order of the SendControl calls that
// returned. It blocks until msg is handed to the connection.
func (s *Session) SendControl(msg []byte) error {
	if len(msg) > MaxControlLen {
		return fmt.Errorf("%w: control message of %d bytes", ErrTooLarge, len(msg))
	}
	f := &frame{payload: msg, done: make(chan error, 1)}
	putHeader(&f.hdr, typeControl, 0, len(msg))
	if err := s.enqueue(f, false); err != nil {
		return err
	}
	return <-f.done
}

// RTT is the smoothed PING->PONG round-trip time, 0 before the first PONG.
func (s *Session) RTT() time.Duration { return time.Duration(s.rtt.Load()) }

// Wait returns once the session's goroutines have ended, after it closed:
// no callback of its Config runs any more.
func (s *Session) Wait() { s.wg.Wait() }

// Done is closed when the session is closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is nil while the session is open, then the cause of the close:
// ErrSessionClosed (wrapped) for a local Close or a peer that closed,
// ErrPeerDead, an error wrapping ErrProtocol, or an I/O error.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// closedErr takes no lock: enqueue calls it with Session.mu held.
func (s *Session) closedErr() error {
	if p := s.cerrP.Load(); p != nil {
		return *p
	}
	return ErrSessionClosed
}

// Close tells the peer (GOAWAY) and closes the session and all its streams.
func (s *Session) Close() error {
	return s.goAway(goAwayNormal, ErrSessionClosed)
}

// CloseWithError is Close with err as the session's Err.
func (s *Session) CloseWithError(err error) error {
	if err == nil {
		err = ErrSessionClosed
	}
	return s.goAway(goAwayNormal, err)
}

// goAway sends GOAWAY, waits briefly for it to be written, then closes.
func (s *Session) goAway(code uint32, err error) error {
	s.goingAway.CompareAndSwap(nil, &err)
	f := newCtlFrame(typeGoAway, 0, 4)
	binary.BigEndian.PutUint32(f.payload, code)
	f.done = make(chan error, 1)
	f.flush = true
	if s.enqueue(f, false) == nil {
		t := s.cfg.Clock.NewTimer(goAwayWait)
		select {
		case werr := <-f.done:
			// The GOAWAY is out. Closing now would answer whatever the
			// peer still sends with a reset, which can reach it before its
			// reader has taken the GOAWAY: it would see a lost connection
			// where there was a close. So half-close, and let the peer,
			// once it has read the GOAWAY, close first; our reader's EOF
			// then ends the session.
			if cw, ok := under[interface{ CloseWrite() error }](s.conn); ok && werr == nil && cw.CloseWrite() == nil {
				select {
				case <-s.done:
				case <-t.C():
				}
			}
		case <-t.C():
		case <-s.done:
		}
		t.Stop()
	}
	s.closeWithError(err)
	return nil
}

// goAwayWait bounds how long Close waits for GOAWAY to reach a slow conn
// and for the peer to close its side.
const goAwayWait = 250 * time.Millisecond

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	return Stats{
		StreamsOpened:   s.nOpened.Load(),
		StreamsAccepted: s.nAccepted.Load(),
		StreamsActive:   s.nActive.Load(),
		StreamsFailed:   s.nFailed.Load(),
		BytesSent:       s.nSent.Load(),
		BytesReceived:   s.nRecv.Load(),
	}
}

// closeWithError closes the connection and every stream; the first cause wins.
func (s *Session) closeWithError(err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if p := s.goingAway.Load(); p != nil && errors.Is(err, ErrConnLost) {
		err = *p
	}
	s.err = err
	if errors.Is(err, ErrSessionClosed) {
		s.cerr = err
	} else {
		s.cerr = fmt.Errorf("%w: %w", ErrSessionClosed, err)
	}
	streams := make([]*Stream, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	clear(s.streams)
	s.nActive.Store(0)
	cerr := s.cerr
	s.cerrP.Store(&cerr)
	s.mu.Unlock()

	close(s.done)
	s.conn.Close()
	for _, st := range streams {
		st.sessionClosed(cerr)
	}
	switch {
	case errors.Is(err, ErrProtocol):
		s.log.Warn("link closed: peer broke the protocol", "err", err)
	case errors.Is(err, ErrPeerDead):
		s.log.Warn("link closed: peer dead", "err", err)
	default:
		s.log.Debug("link closed", "err", err)
	}
}

func (s *Session) removeStream(st *Stream) {
	s.mu.Lock()
	if s.streams[st.id] == st {
		delete(s.streams, st.id)
		s.nActive.Add(-1)
	}
	s.mu.Unlock()
}

// heartbeatLoop owns tick and dead, which newSession started.
//
// It judges the peer's silence against two limits: the one learnt from the
// peer's PING rhythm (detector.go) makes the link suspect (Suspect), which
// routes new streams around it and costs nothing else; only DeadAfter
// closes the session, with every stream on it. A peer that stalls for
// longer than its rhythm allows (GC, CPU starvation) but less than
// DeadAfter thus keeps its established streams.
//
// Both judgements run here, on another goroutine than the read loop that
// stamps lastRecv. When this process was stopped (SIGSTOP, a VM pause,
// starved of CPU), the timer comes due while nothing runs; on resume the
// runtime may run this loop before the read loop has taken the frames the
// peer sent meanwhile from the socket, and a peer stopped with us (same
// machine) has not had a chance to send its next PING. So a silence is only
// judged at once when this loop was running when it came due; otherwise
// DeadAfter gives it one grace of HeartbeatInterval, and suspicion waits
// for the next wake-up, as spec.md says. "Not running" is read from this
// loop's own wake-ups, on the session's clock: the timer fired more than
// lateSlack after its due time, or the loop slept through a PING tick by
// more than lateSlack (which catches a stop that ended just after the due
// time, whose timer looks punctual). A socket holding bytes not read yet
// (SIOCINQ) shows the same of the read loop alone: the peer was not silent.
//
// Comparing the silence with the time the read loop last ran instead would
// not do: a read loop blocked in Read runs only when a frame comes, so its
// last run is the last frame, and it cannot tell "nothing came" from "not
// yet scheduled"; nor would it wait for the PING of a peer stopped with us.
func (s *Session) heartbeatLoop(tick clock.Ticker, dead clock.Timer) {
	defer s.wg.Done()
	defer tick.Stop()
	defer dead.Stop()
	var (
		hb        = int64(s.cfg.HeartbeatInterval)
		deadAfter = int64(s.cfg.DeadAfter)
		// lateSlack is how far past its due time a wake-up may come in a
		// running process: well above timer and scheduling jitter (a
		// millisecond or so), well below a stop worth the name.
		lateSlack = hb / 10
		due       = deadAfter      // when dead fires, on now()'s time line
		woke      int64            // now() at the previous wake-up
		graced    int64       = -1 // lastRecv when the last grace was given
		graceEnd  int64            // when that grace ends
	)
	s.ping()
	for {
		fired := false
		select {
		case <-s.done:
			return
		case <-tick.C():
		case <-dead.C():
			fired = true
		}
		now := s.now()
		// Past the due time, this process was stopped across it if the
		// timer came late, or if this loop, which the ticker wakes every
		// hb, slept through a tick. A fake clock stepped exactly onto the
		// due time is punctual: the process was running then.
		stopped := now > due && (now-due > lateSlack || now-woke > hb+lateSlack)
		woke = now
		last := s.lastRecv.Load()
		deadAt := last + deadAfter
		if graced == last {
			deadAt = graceEnd
		}
		if now >= deadAt {
			if graced == last || !stopped && !inputQueued(s.sock) {
				s.closeWithError(fmt.Errorf("%w (silent for %v)", ErrPeerDead, time.Duration(now-last).Round(time.Millisecond)))
				return
			}
			// Stopped across the due time, or the read loop starved while
			// this loop ran (the socket holds unread frames, so the peer
			// was not silent): let the read loop catch up and the peer
			// send, once per silence.
			graced, graceEnd = last, now+hb
			deadAt = graceEnd
		}
		next := deadAt
		if limit := s.det.timeout(hb/4, hb/20, deadAfter); limit < deadAfter && s.quiet.Load() != last {
			switch {
			case now < last+limit:
				next = min(next, last+limit)
			case !stopped && !inputQueued(s.sock):
				s.quietSince(last, fmt.Sprintf("no frame for longer than the peer's PING rhythm allows (%v)", time.Duration(limit).Round(time.Millisecond)))
			}
			// Otherwise judged again at the next wake-up, a tick at most
			// hb away, once the read loop has had its turn.
		}
		if fired || next != due {
			due = next
			dead.Reset(time.Duration(due - now))
		}
		// The PING goes after the re-arm so that a test on a fake clock,
		// which waits for each tick's PING before it steps again, never
		// moves time between reading now and arming the timer from it.
		if !fired {
			s.ping()
		}
	}
}

func (s *Session) ping() {
	f := newCtlFrame(typePing, 0, 8)
	binary.BigEndian.PutUint64(f.payload, uint64(s.now()))
	s.enqueue(f, true)
}

func (s *Session) onPong(b []byte) {
	sent := int64(binary.BigEndian.Uint64(b))
	now := s.now()
	if sent < 0 || sent > now {
		return // not one of ours
	}
	sample := now - sent
	if sample == 0 {
		sample = 1
	}
	s.probe.pong(sent, sample)
	old := s.rtt.Load()
	if old == 0 {
		s.rtt.Store(sample)
	} else {
		s.rtt.Store(old - old/8 + sample/8)
	}
}
