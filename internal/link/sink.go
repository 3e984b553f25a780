package link

import (
	"io"
	"net"
	"syscall"
)

// Direct sinks: a stream copied by WriteTo to a socket has its data
// written by the session's read loop itself, when it can be without
// waiting, instead of being handed to WriteTo's goroutine frame by frame.
// On a bulk stream each such hand-off is a wake-up and a context switch
// at the egress (bench/README.md, "One goroutine per direction"); the read
// loop already has the bytes in cache.
//
// The read loop queues DATA as always, but for a stream whose WriteTo is
// waiting on a sink it does not wake WriteTo: it marks the stream pending
// and, just before its BufferedConn reads the link's socket again (so at
// most every 256 KiB read, keeping WriteTo's gathering), writes what is
// queued with one non-blocking writev. What the socket does not take
// (EAGAIN, a short write, an error) stays queued and WriteTo is woken to
// write it the ordinary way, waiting if it must: the read loop never
// blocks on a sink. Only over a BufferedConn, whose reads announce
// themselves; elsewhere WriteTo is woken as before.

// sinkOf is the socket WriteTo may leave to the read loop: only a
// connection that is a plain socket, so that no wrapper's Write is
// bypassed.
func sinkOf(w io.Writer) syscall.RawConn {
	var sc syscall.Conn
	switch c := w.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// setSink registers raw (nil: none) as the destination of st's WriteTo.
func (st *Stream) setSink(raw syscall.RawConn) {
	if raw == nil || !st.s.sinks {
		return
	}
	st.mu.Lock()
	st.sink = raw
	st.mu.Unlock()
}

// clearSink ends setSink and returns the bytes the read loop wrote to it.
// A flush in progress holds st.mu, so none writes after this returns.
func (st *Stream) clearSink() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := st.sinkWrote
	st.sink, st.sinkWrote = nil, 0
	return n
}

// deferWakeLocked reports whether the read loop, having queued data for
// st, leaves it to flushSinks rather than waking the reader.
func (st *Stream) deferWakeLocked() bool {
	if st.sink == nil || !st.sinkIdle {
		return false
	}
	if !st.sinkPending {
		st.sinkPending = true
		st.s.pending = append(st.s.pending, st)
	}
	return true
}

// sinkWriter is the read loop's writev to a sink, kept in the session so
// that a flush allocates nothing: a gather array on the stack and a
// callback for RawConn.Write both escape to the heap, and under
// request/response traffic, one flush per message, they were most of what
// the link allocated, and so most of what made the garbage collector run
// (bench/README.md, "p99 of 1 KiB request/response"). Only the read loop
// uses it.
type sinkWriter struct {
	bufs [maxGather][]byte
	v    [][]byte
	n    int
	err  error
	fn   func(fd uintptr) bool // w.write, bound once
}

// flushSinks writes what the read loop queued for pending sinks. It runs
// on the read loop only (BufferedConn.beforeRead, and once more as the
// read loop ends).
func (s *Session) flushSinks() {
	for i, st := range s.pending {
		st.flushSink()
		s.pending[i] = nil
	}
	s.pending = s.pending[:0]
}

// flushSink writes st's queue to its sink without waiting and wakes WriteTo
// if anything is left for it: data the socket did not take, the FIN, an
// error. The non-blocking writev runs under st.mu, so that WriteTo, Close
// and a reset see the queue either before or after it.
func (st *Stream) flushSink() {
	st.mu.Lock()
	st.sinkPending = false
	if st.sink != nil && st.sinkIdle && !st.readClosed && st.errLocked() == nil && st.rq.n > 0 {
		w := &st.s.sinkW
		// An error is left to WriteTo's own write, which meets it again.
		n, _ := w.writev(st.sink, st.rq.peek(w.bufs[:0]))
		clear(w.bufs[:]) // the queue may release the buffers: keep none alive
		if n > 0 {
			st.rq.discard(n)
			st.sinkWrote += int64(n)
			st.consumedLocked(n)
		}
	}
	wake := st.rq.n > 0 || st.finRecv || st.readClosed || st.errLocked() != nil
	st.mu.Unlock()
	if wake {
		notify(st.readCh)
	}
}
