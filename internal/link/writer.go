package link

import (
	"bufio"
	"fmt"
	"net"
	"sync"
)

// frame is one queued outgoing frame. payload is borrowed from the caller
// (who waits on done) or owned (returned to the pool once written).
type frame struct {
	hdr     [hdrSize]byte
	small   [8]byte // backing for short control payloads
	payload []byte
	owned   *[]byte
	done    chan error // receives the write result when non-nil; cap >= 1
	// flush sends the frame out of the process before done is answered:
	// its sender closes the connection next (GOAWAY), which would drop a
	// frame still in bufio or a BufferedConn's batch.
	flush bool
	// pooled: from newDataFrame, given back to dataFrames once written.
	pooled bool
}

// dataFrames recycles the frames of owned DATA (sendOwned, writeClose):
// one per message under request/response traffic, they were the link's
// largest allocation once sink flushes stopped allocating (bench/README.md,
// "p99 of 1 KiB request/response"). No one waits on such a frame (done is
// nil) or touches it once queued, so the writer is its last user.
var dataFrames = sync.Pool{New: func() any { return new(frame) }}

// newDataFrame is a DATA frame of stream id carrying payload; it owns b
// unless b is nil (a buffer split over several frames is the last one's).
func newDataFrame(id uint32, payload []byte, b *[]byte) *frame {
	f := dataFrames.Get().(*frame)
	putHeader(&f.hdr, typeData, id, len(payload))
	f.payload, f.owned, f.pooled = payload, b, true
	return f
}

func newCtlFrame(t frameType, id uint32, n int) *frame {
	f := &frame{}
	putHeader(&f.hdr, t, id, n)
	if n <= len(f.small) {
		f.payload = f.small[:n]
	} else {
		f.payload = make([]byte, n)
	}
	return f
}

// Write-queue limits: a peer that keeps provoking replies (RST, REJECT)
// without reading them cannot grow the queue past this.
const maxQueued = 1 << 16

// enqueue hands f to the writer goroutine. prio frames (WINDOW, PING, PONG)
// overtake queued data so credit and RTT are not delayed behind bulk data;
// every other frame keeps its order. wmu is a leaf lock: enqueue may be
// called with a Stream.mu held.
func (s *Session) enqueue(f *frame, prio bool) error {
	return s.enqueueFrames(prio, f)
}

// enqueueFrames is enqueue of several frames at once, in order: the writer
// is woken once and takes them in one batch.
func (s *Session) enqueueFrames(prio bool, fs ...*frame) error {
	wake, err := s.queue(prio, fs)
	if wake {
		s.wakeWriter()
	}
	return err
}

// queue appends fs to the write queue; wake reports that it was empty, so
// that no one may be about to take it.
func (s *Session) queue(prio bool, fs []*frame) (wake bool, err error) {
	s.wmu.Lock()
	if s.wclosed {
		s.wmu.Unlock()
		for _, f := range fs {
			if f.owned != nil {
				putBuf(f.owned)
				f.owned = nil
			}
		}
		return false, s.closedErr()
	}
	wake = len(s.wprio)+len(s.wnormal) == 0
	if prio {
		s.wprio = append(s.wprio, fs...)
	} else {
		s.wnormal = append(s.wnormal, fs...)
	}
	s.wmu.Unlock()
	return wake, nil
}

// queueLen is used by the read loop to refuse to pile up replies.
func (s *Session) queueLen() int {
	s.wmu.Lock()
	n := len(s.wprio) + len(s.wnormal)
	s.wmu.Unlock()
	return n
}

func (s *Session) wakeWriter() {
	select {
	case s.wwake <- struct{}{}:
	default:
	}
}

// writeFramesNow queues fs and, when no one holds the writer role, writes
// the queue on the caller's goroutine instead of waking the writer: a bulk
// stream's ReadFrom then reads its source and writes the link on one
// goroutine, with no hand-off per read (bench/README.md, "One goroutine per
// direction"). Only for large frames: small ones wait for the writer,
// which gathers several streams' frames into one record and one write.
// Never on the read loop, which must not block on the connection.
func (s *Session) writeFramesNow(fs ...*frame) error {
	wake, err := s.queue(false, fs)
	if err != nil {
		return err
	}
	select {
	case s.wrole <- struct{}{}:
	default:
		// The holder may have looked at the queue for the last time.
		if wake {
			s.wakeWriter()
		}
		return nil
	}
	err = s.writeQueued()
	<-s.wrole
	if err != nil {
		s.writeFailed(err)
	}
	return nil
}

// writeLoop writes what others queue, whenever no caller of writeFramesNow
// holds the writer role.
func (s *Session) writeLoop() {
	defer s.wg.Done()
	var err error
	for err == nil {
		s.wmu.Lock()
		for len(s.wprio)+len(s.wnormal) == 0 {
			s.wmu.Unlock()
			select {
			case <-s.wwake:
			case <-s.done:
				s.endWriter()
				return
			}
			s.wmu.Lock()
		}
		s.wmu.Unlock()
		select {
		case s.wrole <- struct{}{}:
		case <-s.done:
			s.endWriter()
			return
		}
		err = s.writeQueued()
		<-s.wrole
	}
	s.writeFailed(err)
	s.endWriter()
}

// writeQueued writes the queue, in batches, until it finds it empty, then
// flushes. The caller holds the writer role (wrole), which owns s.fw.
func (s *Session) writeQueued() error {
	w := &s.fw
	w.beginBatch()
	for {
		s.wmu.Lock()
		p, n := s.wprio, s.wnormal
		if len(p)+len(n) == 0 {
			s.wmu.Unlock()
			return w.flush()
		}
		s.wprio, s.wnormal = s.spareP[:0], s.spareN[:0]
		s.wmu.Unlock()

		err := s.writeFrames(w, p, nil)
		err = s.writeFrames(w, n, err)
		clear(p)
		clear(n)
		s.spareP, s.spareN = p[:0], n[:0]
		if err != nil {
			w.endBatch()
			return err
		}
	}
}

func (s *Session) writeFailed(err error) {
	s.closeWithError(connLost{fmt.Errorf("%w: write: %w", ErrSessionClosed, err)})
}

// endWriter waits for the writer role, so that no writeFramesNow is
// still writing, ends the batch and fails what is left in the queue.
func (s *Session) endWriter() {
	s.wrole <- struct{}{}
	s.fw.endBatch()
	s.drainWriter()
}

// frameWriter writes frames to the session's connection: small ones
// through bw, so that they coalesce; over a BufferedConn, large payloads
// straight to the connection, since the BufferedConn gathers the records
// into one system call anyway and bufio's copy would be wasted.
type frameWriter struct {
	bw       *bufio.Writer
	conn     net.Conn
	bc       *BufferedConn // nil: no batching under the connection
	batching bool
}

// directPayload is the payload size from which a frame skips bufio.
const directPayload = 16 << 10

func (w *frameWriter) write(f *frame) error {
	if _, err := w.bw.Write(f.hdr[:]); err != nil || len(f.payload) == 0 {
		return err
	}
	if w.bc == nil || len(f.payload) < directPayload {
		_, err := w.bw.Write(f.payload)
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	_, err := w.conn.Write(f.payload)
	return err
}

func (w *frameWriter) beginBatch() {
	if w.bc != nil && !w.batching {
		w.bc.beginBatch()
		w.batching = true
	}
}

// flush sends everything written so far and ends the batch.
func (w *frameWriter) flush() error {
	err := w.bw.Flush()
	if w.batching {
		w.batching = false
		if berr := w.bc.endBatch(); err == nil {
			err = berr
		}
	}
	return err
}

// endBatch lets writes by others (a TLS alert) through again.
func (w *frameWriter) endBatch() {
	if w.batching {
		w.batching = false
		w.bc.endBatch()
	}
}

// writeFrames writes fs and answers each frame; after an error it only
// answers.
func (s *Session) writeFrames(w *frameWriter, fs []*frame, err error) error {
	for _, f := range fs {
		if err == nil {
			err = w.write(f)
			if frameType(f.hdr[1]) == typePong {
				s.pongQueued.Store(false)
			}
			if err == nil && f.flush {
				err = w.flush()
			}
		}
		if f.owned != nil {
			putBuf(f.owned)
			f.owned = nil
		}
		f.payload = nil
		if f.done != nil {
			f.done <- err
		}
		if f.pooled {
			*f = frame{}
			dataFrames.Put(f)
		}
	}
	return err
}

// drainWriter stops the queue for good and fails whatever is still in it.
func (s *Session) drainWriter() {
	s.wmu.Lock()
	s.wclosed = true
	p, n := s.wprio, s.wnormal
	s.wprio, s.wnormal = nil, nil
	s.wmu.Unlock()
	err := s.closedErr()
	s.writeFrames(nil, p, err)
	s.writeFrames(nil, n, err)
}
