package link

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"k8s.io/utils/clock"
)

type streamState uint8

const (
	stateOpening  streamState = iota // opened here, waiting for CONFIRM
	stateAccepted                    // opened by the peer, not yet confirmed
	stateOpen
	stateRejected
)

// Stream is one bidirectional byte stream of a Session. It implements
// net.Conn; Close is CloseWrite plus stop reading. Read and Write may be
// called concurrently with each other and with Close.
type Stream struct {
	s         *Session
	id        uint32
	header    []byte
	confirmed chan struct{} // opener: closed once Open can return

	readCh  chan struct{} // cap 1: something changed for readers
	writeCh chan struct{} // cap 1: something changed for writers
	wlock   sync.Mutex    // serializes writers, so frames of one Write stay together
	// wdone, cap 2, takes the writer's acks for data frames borrowed from
	// a Write; made by the first Write that needs it (wacks), as most
	// streams never write that way.
	wdone   chan error
	wframes [2]frame

	// mu guards the fields below it.
	mu            sync.Mutex
	state         streamState
	confirmClosed bool
	rejectErr     error
	rq            recvQueue
	recvWindow    uint32 // bytes the peer may still send
	recvConsumed  uint32 // read since the last WINDOW
	readClosed    bool   // Close: incoming data is discarded, then RST
	finRecv       bool
	sendWindow    uint32
	writing       bool // a Write is in progress; it sends the FIN if asked
	writeClosed   bool
	finQueued     bool
	// removed sits with the other bools, not in a padded word of its own:
	// that keeps Stream in the allocator's 416-byte size class (amd64)
	// now that its timers are clock.Timer interfaces.
	removed   bool
	resetErr  error
	sessErr   error
	rdeadline time.Time // on the session's clock, like wdeadline
	wdeadline time.Time
	rtimer    clock.Timer
	wtimer    clock.Timer
	// The direct sink of WriteTo (sink.go): sink is set while WriteTo
	// copies to a socket, sinkIdle while it is not writing itself,
	// sinkPending while the read loop holds queued data back for
	// flushSinks; sinkWrote counts what the read loop wrote.
	sink        syscall.RawConn
	sinkIdle    bool
	sinkPending bool
	sinkWrote   int64
}

var _ net.Conn = (*Stream)(nil)

func newStream(s *Session, id uint32, state streamState, header []byte) *Stream {
	st := &Stream{
		s:          s,
		id:         id,
		header:     header,
		state:      state,
		recvWindow: s.cfg.StreamWindow,
		readCh:     make(chan struct{}, 1),
		writeCh:    make(chan struct{}, 1),
	}
	if state == stateOpening {
		st.confirmed = make(chan struct{})
	}
	return st
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// ID is the stream's ID on the wire.
func (st *Stream) ID() uint32 { return st.id }

// Header is the header the opener sent; callers must not modify it.
func (st *Stream) Header() []byte { return st.header }

// Session is the session the stream belongs to.
func (st *Stream) Session() *Session { return st.s }

// LocalAddr is the session connection's local address.
func (st *Stream) LocalAddr() net.Addr { return st.s.conn.LocalAddr() }

// RemoteAddr is the session connection's remote address.
func (st *Stream) RemoteAddr() net.Addr { return st.s.conn.RemoteAddr() }

// Confirm tells the opener that the far end is ready: its Open returns and
// data may flow. An accepted stream's first Write confirms it implicitly.
func (st *Stream) Confirm() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.confirmLocked()
}

func (st *Stream) confirmLocked() error {
	if err := st.errLocked(); err != nil {
		return err
	}
	if st.state != stateAccepted {
		return ErrStreamState
	}
	st.state = stateOpen
	f := newCtlFrame(typeConfirm, st.id, openPrefix)
	binary.BigEndian.PutUint32(f.payload, st.s.cfg.StreamWindow)
	return st.s.enqueue(f, false)
}

// Reject refuses an accepted, unconfirmed stream; the opener's Open returns
// *RejectError{code, msg}. msg is cut to MaxRejectMsgLen bytes.
func (st *Stream) Reject(code uint16, msg string) error {
	st.mu.Lock()
	if err := st.errLocked(); err != nil {
		st.mu.Unlock()
		return err
	}
	if st.state != stateAccepted {
		st.mu.Unlock()
		return ErrStreamState
	}
	st.state = stateRejected
	st.rejectErr = &RejectError{Code: code, Message: msg}
	st.resetErr = st.rejectErr
	st.rq.reset()
	err := st.s.enqueue(rejectFrame(st.id, code, msg), false)
	st.s.nFailed.Add(1)
	st.removeLocked()
	st.mu.Unlock()
	st.wake()
	return err
}

// errLocked is the error that ends both directions, if any.
func (st *Stream) errLocked() error {
	if st.resetErr != nil {
		return st.resetErr
	}
	return st.sessErr
}

func (st *Stream) wake() {
	notify(st.readCh)
	notify(st.writeCh)
}

// removeLocked drops the stream from the session once it needs no more
// frames. Lock order: Stream.mu before Session.mu.
func (st *Stream) removeLocked() {
	if !st.removed {
		st.removed = true
		st.s.removeStream(st)
	}
}

// waitReadLocked waits, with st.mu held, until data is queued (nil) or
// reading is over: io.EOF after the peer's FIN, or what ended it.
func (st *Stream) waitReadLocked() error {
	for {
		switch {
		case st.readClosed:
			return net.ErrClosed
		case st.resetErr != nil:
			return st.resetErr
		case st.rq.n > 0:
			if !st.sinkPending {
				return nil
			}
			// The read loop writes it to the sink, or wakes us.
		case st.finRecv:
			return io.EOF
		case st.sessErr != nil:
			return st.sessErr
		case st.s.pastDeadline(st.rdeadline):
			return os.ErrDeadlineExceeded
		}
		st.mu.Unlock()
		<-st.readCh
		st.mu.Lock()
	}
}

// Read reads stream data; io.EOF after the peer's FIN.
func (st *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	st.mu.Lock()
	if err := st.waitReadLocked(); err != nil {
		st.mu.Unlock()
		return 0, err
	}
	n := st.rq.read(p)
	more := st.rq.n > 0
	st.consumedLocked(n)
	st.mu.Unlock()
	if more {
		notify(st.readCh) // for a concurrent reader
	}
	return n, nil
}

// ReadBuffer hands over the next received buffer whole, with no copy:
// data is what it holds, and the caller gives b back with ReleaseBuffer
// once done with data. more reports that more data is queued already.
// Errors are Read's: io.EOF after the peer's FIN.
func (st *Stream) ReadBuffer() (b *[]byte, data []byte, more bool, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	// WriteTo is not writing while in here: the read loop may write to
	// its sink meanwhile.
	st.sinkIdle = st.sink != nil
	err = st.waitReadLocked()
	st.sinkIdle = false
	if err != nil {
		return nil, nil, false, err
	}
	b, data = st.rq.pop()
	st.consumedLocked(len(data))
	return b, data, st.rq.n > 0, nil
}

// ReleaseBuffer gives back a buffer from ReadBuffer.
func (st *Stream) ReleaseBuffer(b *[]byte) { putBuf(b) }

// WriteTo hands received buffers straight to w, saving a copy and the
// 32 KiB steps of io.Copy. When more is queued, it all goes in one call:
// to a TCP connection one writev, as net.Buffers does, rather than a
// write per frame. The gathering state lives on the heap, made on first
// use: WriteTo often runs on a fresh goroutine (forward.Join's second
// direction), whose small stack a larger frame would make the runtime copy.
func (st *Stream) WriteTo(w io.Writer) (total int64, err error) {
	st.setSink(sinkOf(w))
	defer func() { total += st.clearSink() }()
	var g *gathered
	for {
		b, data, more, err := st.ReadBuffer()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		var k int64
		if !more {
			var k1 int
			k1, err = w.Write(data)
			putBuf(b)
			k = int64(k1)
		} else {
			if g == nil {
				g = &gathered{all: make(net.Buffers, 0, maxGather)}
			}
			k, err = g.write(st, w, b, data)
		}
		total += k
		if err != nil {
			return total, err
		}
	}
}

// maxGather bounds the buffers WriteTo hands to one write: 16 frames of
// up to 64 KiB, a megabyte.
const maxGather = 16

// gathered is WriteTo's state for writing several buffers at once: v is
// consumed by each write, all keeps the backing array.
type gathered struct {
	owned [maxGather]*[]byte
	all   net.Buffers
	v     net.Buffers
}

// write writes data (from b) and whatever else st has queued, up to
// maxGather buffers, in one call, and releases them.
func (g *gathered) write(st *Stream, w io.Writer, b *[]byte, data []byte) (int64, error) {
	g.owned[0], g.all = b, append(g.all[:0], data)
	st.mu.Lock()
	size := 0
	for len(g.all) < maxGather && st.rq.n > 0 {
		b, data := st.rq.pop()
		g.owned[len(g.all)], g.all = b, append(g.all, data)
		size += len(data)
	}
	st.consumedLocked(size)
	st.mu.Unlock()
	g.v = g.all
	k, err := g.v.WriteTo(w)
	for i := range g.all {
		putBuf(g.owned[i])
		g.owned[i], g.all[i] = nil, nil
	}
	return k, err
}

// CopyClose copies the stream to dst until the peer's FIN, then
// half-closes dst: WriteTo then dst.CloseWrite, except that the last data,
// when the FIN is in by the time it is taken, leaves with dst's FIN in one
// batch (WriteClose): a transit site relays a sealed stream's
// end-of-stream record and its FIN in one link write.
func (st *Stream) CopyClose(dst *Stream) (int64, error) {
	var total int64
	for {
		b, data, more, err := st.ReadBuffer()
		if err == io.EOF {
			return total, dst.CloseWrite()
		}
		if err != nil {
			return total, err
		}
		last := !more && st.drained()
		var n int
		if last {
			n, err = dst.WriteClose(data)
		} else {
			n, err = dst.Write(data)
		}
		putBuf(b)
		total += int64(n)
		if err != nil || last {
			return total, err
		}
	}
}

// drained reports that the peer's FIN is in and everything before it read.
func (st *Stream) drained() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.finRecv && st.rq.n == 0
}

// consumedLocked returns credit to the peer once half the window is read
// (yamux's rule: fewer WINDOW frames, and the sender never stalls while
// the reader keeps up).
func (st *Stream) consumedLocked(n int) {
	st.recvConsumed += uint32(n)
	if st.recvConsumed < st.s.cfg.StreamWindow/2 || st.finRecv || st.resetErr != nil || st.sessErr != nil {
		return
	}
	inc := st.recvConsumed
	st.recvConsumed = 0
	st.recvWindow += inc
	f := newCtlFrame(typeWindow, st.id, 4)
	binary.BigEndian.PutUint32(f.payload, inc)
	st.s.enqueue(f, true)
}

// copyWrite is the largest Write that is copied into a pooled buffer and
// queued without waiting for the writer goroutine: for a small write the
// copy costs less than the round trip to the writer and back.
const copyWrite = 4 << 10

// Write writes p as DATA frames within the peer's credit. It returns once
// the frames are handed to the connection's buffer, or, for a write of up
// to copyWrite bytes, once a copy is queued; an error writing that copy
// closes the session, so later calls see it.
func (st *Stream) Write(p []byte) (int, error) {
	st.wlock.Lock()
	defer st.wlock.Unlock()
	st.mu.Lock()
	if st.state == stateAccepted {
		if err := st.confirmLocked(); err != nil {
			st.mu.Unlock()
			return 0, err
		}
	}
	st.writing = true
	st.mu.Unlock()

	if len(p) > 0 && len(p) <= copyWrite {
		b := getBuf(len(p))
		copy(*b, p)
		n, err := st.sendOwned(b, len(p), false)
		st.endWrite()
		return n, err
	}
	total, outstanding, next := 0, 0, 0
	var err error
	for len(p) > 0 {
		var n int
		if n, err = st.takeWindow(len(p)); err != nil {
			break
		}
		if outstanding == len(st.wframes) {
			if err = <-st.wdone; err != nil {
				outstanding--
				break
			}
			outstanding--
		}
		f := &st.wframes[next]
		next = (next + 1) % len(st.wframes)
		putHeader(&f.hdr, typeData, st.id, n)
		f.payload = p[:n]
		f.done = st.wacks()
		if err = st.s.enqueue(f, false); err != nil {
			break
		}
		outstanding++
		st.s.nSent.Add(uint64(n))
		total += n
		p = p[n:]
	}
	for ; outstanding > 0; outstanding-- {
		if werr := <-st.wdone; werr != nil && err == nil {
			err = werr
		}
	}
	st.endWrite()
	return total, err
}

// wacks is wdone, made on first use. Caller holds wlock.
func (st *Stream) wacks() chan error {
	if st.wdone == nil {
		st.wdone = make(chan error, 2)
	}
	return st.wdone
}

// takeWindow waits for credit and takes up to want bytes of it.
func (st *Stream) takeWindow(want int) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for {
		if err := st.errLocked(); err != nil {
			return 0, err
		}
		// A Close racing the reader's own close may return before this
		// stream hears of it (sessionClosed runs after the session is
		// marked closed); a write after Close must still fail, not queue.
		if p := st.s.cerrP.Load(); p != nil {
			return 0, *p
		}
		if st.writeClosed {
			return 0, net.ErrClosed
		}
		if st.sendWindow > 0 {
			break
		}
		if st.s.pastDeadline(st.wdeadline) {
			return 0, os.ErrDeadlineExceeded
		}
		st.mu.Unlock()
		<-st.writeCh
		st.mu.Lock()
	}
	n := min(want, int(st.sendWindow), maxPayload)
	st.sendWindow -= uint32(n)
	return n, nil
}

// moreWindow takes up to min(want, maxPayload) bytes of credit if there
// is any and the stream may still write, without waiting: 0 otherwise
// (takeWindow then waits, or reports why not).
func (st *Stream) moreWindow(want int) int {
	if want == 0 {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.errLocked() != nil || st.writeClosed || st.s.cerrP.Load() != nil {
		return 0
	}
	n := min(want, int(st.sendWindow), maxPayload)
	st.sendWindow -= uint32(n)
	return n
}

// endWrite sends the FIN that a CloseWrite during this Write deferred, so
// it follows the Write's data.
func (st *Stream) endWrite() {
	st.mu.Lock()
	st.writing = false
	if st.writeClosed {
		st.queueFinLocked()
	}
	st.mu.Unlock()
}

func (st *Stream) queueFinLocked() {
	if st.finQueued || st.resetErr != nil || st.sessErr != nil {
		return
	}
	st.finQueued = true
	st.s.enqueue(newCtlFrame(typeFin, st.id, 0), false)
	if st.finRecv {
		st.removeLocked()
	}
}

// ReadFrom reads r into pooled buffers and queues them without waiting
// for the writer, so reading r overlaps writing the connection. A read
// that fills its buffer makes the next one larger (up to maxRead, split
// into frames of at most maxPayload): a bulk sender then costs a read
// and a wake-up of the writer per 256 KiB rather than per frame.
func (st *Stream) ReadFrom(r io.Reader) (int64, error) {
	st.wlock.Lock()
	defer st.wlock.Unlock()
	st.mu.Lock()
	if st.state == stateAccepted {
		if err := st.confirmLocked(); err != nil {
			st.mu.Unlock()
			return 0, err
		}
	}
	st.writing = true
	st.mu.Unlock()
	defer st.endWrite()

	var total int64
	size := maxPayload
	for {
		b := getBuf(size)
		n, rerr := r.Read(*b)
		if n > 0 && (n < maxPayload/2 || n < size/4) {
			// Queued frames own their buffers: a short read must not pin a
			// much larger one.
			small := getBuf(n)
			copy(*small, (*b)[:n])
			putBuf(b)
			b = small
		}
		switch {
		case n == size:
			size = maxRead
		case n < size/2:
			size = maxPayload
		}
		if n == 0 {
			putBuf(b)
		} else {
			k, err := st.sendOwned(b, n, n >= maxPayload)
			total += int64(k)
			if err != nil {
				return total, err
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// maxRead is the largest read ReadFrom makes.
const maxRead = 4 * maxPayload

// sendOwned queues (*b)[:n] (n > 0) as DATA frames within the peer's
// credit, without waiting for the writer; the last frame owns b and gives
// it back to the pool once written, the writer taking frames in order.
// The frames that credit allows at once are queued together; with now,
// written on this goroutine if the link's writer is idle
// (Session.writeFramesNow). Caller holds wlock.
func (st *Stream) sendOwned(b *[]byte, n int, now bool) (int, error) {
	data := (*b)[:n]
	sent := 0
	var batch [maxRead / maxPayload]*frame
	for len(data) > 0 {
		k, err := st.takeWindow(len(data))
		if err != nil {
			if sent == 0 {
				putBuf(b)
			} // else queued frames may still read b: left to the collector
			return sent, err
		}
		fs, size := batch[:0], 0
		for k > 0 {
			var owned *[]byte
			if len(data) == k {
				owned = b
			}
			fs = append(fs, newDataFrame(st.id, data[:k], owned))
			data = data[k:]
			size += k
			if len(fs) == len(batch) {
				break
			}
			k = st.moreWindow(len(data))
		}
		if now {
			err = st.s.writeFramesNow(fs...)
		} else {
			err = st.s.enqueueFrames(false, fs...)
		}
		if err != nil {
			// The writer is gone (enqueueFrames freed b if the last frame
			// owned it): nothing queued will be written any more.
			if len(data) > 0 && sent == 0 {
				putBuf(b)
			}
			return sent, err
		}
		st.s.nSent.Add(uint64(size))
		sent += size
	}
	return sent, nil
}

// WriteClose is Write(p) then CloseWrite, but for a p of up to copyWrite
// bytes within the peer's credit the data and the FIN are queued together,
// so the writer sends them in one batch (one TLS record, one system call)
// where Write then CloseWrite may wake it for each: a sealed stream ends
// every direction with a short record before its FIN.
func (st *Stream) WriteClose(p []byte) (int, error) {
	if n, ok, err := st.writeClose(p); ok {
		return n, err
	}
	n, err := st.Write(p)
	if err != nil {
		return n, err
	}
	return n, st.CloseWrite()
}

// writeClose is WriteClose's one batch; ok is false when it does not apply
// (p empty or large, credit short, the stream not yet confirmed or
// already closed for writing), and nothing was done.
func (st *Stream) writeClose(p []byte) (n int, ok bool, err error) {
	if len(p) == 0 || len(p) > copyWrite {
		return 0, false, nil
	}
	st.wlock.Lock()
	defer st.wlock.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.state != stateOpen || st.writeClosed || st.errLocked() != nil || st.sendWindow < uint32(len(p)) {
		return 0, false, nil
	}
	b := getBuf(len(p))
	copy(*b, p)
	data := newDataFrame(st.id, (*b)[:len(p)], b)
	st.sendWindow -= uint32(len(p))
	st.writeClosed, st.finQueued = true, true
	if err := st.s.enqueueFrames(false, data, newCtlFrame(typeFin, st.id, 0)); err != nil {
		return 0, true, err
	}
	st.s.nSent.Add(uint64(len(p)))
	if st.finRecv {
		st.removeLocked()
	}
	return len(p), true, nil
}

// CloseWrite half-closes: the peer reads io.EOF after the data written so
// far; this side may go on reading.
func (st *Stream) CloseWrite() error {
	st.mu.Lock()
	if st.state == stateAccepted {
		st.confirmLocked()
	}
	first := !st.writeClosed
	st.writeClosed = true
	if !st.writing {
		st.queueFinLocked()
	}
	st.mu.Unlock()
	if first {
		notify(st.writeCh)
	}
	return nil
}

// Close is CloseWrite plus stop reading: buffered and later data is
// discarded, and if data was unread or arrives later the peer is reset
// (CodeClosed), as TCP does. An accepted stream never confirmed is
// rejected instead.
func (st *Stream) Close() error {
	st.mu.Lock()
	if st.state == stateAccepted && st.errLocked() == nil {
		st.mu.Unlock()
		return st.Reject(CodeClosed, "closed")
	}
	st.writeClosed = true
	if !st.writing {
		st.queueFinLocked()
	}
	if !st.readClosed {
		st.readClosed = true
		unread := st.rq.n > 0
		st.rq.reset()
		if st.errLocked() == nil && !st.finRecv && unread {
			st.resetLocked(CodeClosed)
		} else if st.finRecv && st.finQueued {
			st.removeLocked()
		}
	}
	st.stopTimersLocked()
	st.mu.Unlock()
	st.wake()
	return nil
}

// Reset aborts both directions: the peer's Read and Write fail with
// *ResetError{Code: code, Remote: true}.
func (st *Stream) Reset(code uint16) error {
	st.mu.Lock()
	st.resetLocked(code)
	st.mu.Unlock()
	st.wake()
	return nil
}

func (st *Stream) resetLocked(code uint16) {
	if st.errLocked() != nil {
		return
	}
	st.resetErr = &ResetError{Code: code}
	st.rq.reset()
	st.s.enqueue(rstFrame(st.id, code), false)
	st.s.nFailed.Add(1)
	st.wakeOpenerLocked()
	st.removeLocked()
}

func (st *Stream) wakeOpenerLocked() {
	if st.confirmed != nil && !st.confirmClosed {
		st.confirmClosed = true
		close(st.confirmed)
	}
}

func (st *Stream) stopTimersLocked() {
	if st.rtimer != nil {
		st.rtimer.Stop()
	}
	if st.wtimer != nil {
		st.wtimer.Stop()
	}
}

// SetDeadline sets both deadlines.
func (st *Stream) SetDeadline(t time.Time) error {
	st.SetReadDeadline(t)
	return st.SetWriteDeadline(t)
}

// SetReadDeadline makes blocked and future Reads fail with
// os.ErrDeadlineExceeded after t; zero clears it. t is read on the session's
// Config.Clock: the wall clock unless the session was given another one.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.mu.Lock()
	st.rdeadline = t
	st.rtimer = armTimer(st.s.cfg.Clock, st.rtimer, t, st.readCh)
	st.mu.Unlock()
	notify(st.readCh)
	return nil
}

// SetWriteDeadline makes Writes waiting for credit fail with
// os.ErrDeadlineExceeded after t; a frame already handed to the writer
// is still sent. Zero clears it. t is read on the session's Config.Clock,
// like the read deadline.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.mu.Lock()
	st.wdeadline = t
	st.wtimer = armTimer(st.s.cfg.Clock, st.wtimer, t, st.writeCh)
	st.mu.Unlock()
	notify(st.writeCh)
	return nil
}

// pastDeadline reports whether deadline d is set and has passed on the
// session's clock. Only a Read or Write about to wait calls it, never one
// that can go ahead, so the data path does not read the clock.
func (s *Session) pastDeadline(d time.Time) bool {
	return !d.IsZero() && !s.cfg.Clock.Now().Before(d)
}

// armTimer makes the clock wake c's waiter when deadline t passes, reusing
// tm. The waiter then checks the deadline itself (pastDeadline), so a timer
// that fires late or spuriously is harmless.
func armTimer(clk clock.WithDelayedExecution, tm clock.Timer, t time.Time, c chan struct{}) clock.Timer {
	if t.IsZero() {
		if tm != nil {
			tm.Stop()
		}
		return tm
	}
	d := t.Sub(clk.Now())
	if tm == nil {
		return clk.AfterFunc(d, func() { notify(c) })
	}
	// k8s's FakeClock also sends an AfterFunc timer's firing into its
	// one-slot channel, and a second firing blocks FakeClock.Step (holding
	// the clock's lock) while the first is unread. Stop first, so no firing
	// races the drain. A real AfterFunc timer has a nil channel.
	tm.Stop()
	select {
	case <-tm.C():
	default:
	}
	tm.Reset(d)
	return tm
}

// --- read loop side ---

func (st *Stream) recvData(br *bufio.Reader, n uint32) error {
	st.mu.Lock()
	if st.state == stateOpening || st.state == stateAccepted {
		st.mu.Unlock()
		return protoErr("DATA on unconfirmed stream %d", st.id)
	}
	if st.finRecv {
		st.mu.Unlock()
		return protoErr("DATA after FIN on stream %d", st.id)
	}
	if n > st.recvWindow {
		st.mu.Unlock()
		return protoErr("DATA of %d bytes beyond window %d on stream %d", n, st.recvWindow, st.id)
	}
	st.recvWindow -= n
	if st.readClosed || st.errLocked() != nil {
		if st.readClosed && st.errLocked() == nil {
			st.resetLocked(CodeClosed)
		}
		st.mu.Unlock()
		st.wake()
		return discard(br, n)
	}
	st.mu.Unlock()

	b := getBuf(int(n))
	if err := readData(br, st.s.conn, *b); err != nil {
		putBuf(b)
		return err
	}
	st.s.nRecv.Add(uint64(n))
	st.mu.Lock()
	deferred := false
	if st.readClosed || st.errLocked() != nil {
		putBuf(b)
	} else {
		st.rq.push(b)
		deferred = st.deferWakeLocked()
	}
	st.mu.Unlock()
	if !deferred {
		notify(st.readCh)
	}
	return nil
}

func (st *Stream) recvWindowUpdate(inc uint32) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if inc == 0 || uint64(st.sendWindow)+uint64(inc) > 0xffffffff {
		return protoErr("bad WINDOW increment %d on stream %d", inc, st.id)
	}
	st.sendWindow += inc
	notify(st.writeCh)
	return nil
}

func (st *Stream) recvConfirm(window uint32) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.state != stateOpening {
		if st.resetErr != nil {
			return nil // canceled while the CONFIRM was in flight
		}
		return protoErr("CONFIRM on stream %d in state %d", st.id, st.state)
	}
	if window == 0 {
		return protoErr("CONFIRM with zero window on stream %d", st.id)
	}
	st.state = stateOpen
	st.sendWindow = window
	st.wakeOpenerLocked()
	return nil
}

func (st *Stream) recvReject(code uint16, msg string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.state != stateOpening {
		if st.resetErr != nil {
			return nil
		}
		return protoErr("REJECT on stream %d in state %d", st.id, st.state)
	}
	st.state = stateRejected
	st.rejectErr = &RejectError{Code: code, Message: msg}
	st.resetErr = st.rejectErr
	st.s.nFailed.Add(1)
	st.wakeOpenerLocked()
	st.removeLocked()
	return nil
}

func (st *Stream) recvFin() error {
	st.mu.Lock()
	if st.state == stateOpening || st.state == stateAccepted {
		st.mu.Unlock()
		return protoErr("FIN on unconfirmed stream %d", st.id)
	}
	if st.finRecv {
		st.mu.Unlock()
		return protoErr("second FIN on stream %d", st.id)
	}
	st.finRecv = true
	if st.finQueued || st.errLocked() != nil {
		st.removeLocked()
	}
	st.mu.Unlock()
	notify(st.readCh)
	return nil
}

func (st *Stream) recvReset(code uint16) {
	st.mu.Lock()
	if st.errLocked() == nil {
		st.resetErr = &ResetError{Code: code, Remote: true}
		st.rq.reset()
		st.s.nFailed.Add(1)
	}
	st.wakeOpenerLocked()
	st.removeLocked()
	st.mu.Unlock()
	st.wake()
}

func (st *Stream) sessionClosed(err error) {
	st.mu.Lock()
	if st.sessErr == nil {
		st.sessErr = err
	}
	st.removed = true
	st.wakeOpenerLocked()
	st.stopTimersLocked()
	st.mu.Unlock()
	st.wake()
}
