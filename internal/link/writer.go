package link

import (
	"bufio"
	"fmt"
	"net"
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
	s.wmu.Lock()
	if s.wclosed {
		s.wmu.Unlock()
		for _, f := range fs {
			if f.owned != nil {
				putBuf(f.owned)
				f.owned = nil
			}
		}
		return s.closedErr()
	}
	wake := len(s.wprio)+len(s.wnormal) == 0
	if prio {
		s.wprio = append(s.wprio, fs...)
	} else {
		s.wnormal = append(s.wnormal, fs...)
	}
	s.wmu.Unlock()
	if wake {
		select {
		case s.wwake <- struct{}{}:
		default:
		}
	}
	return nil
}

// queueLen is used by the read loop to refuse to pile up replies.
func (s *Session) queueLen() int {
	s.wmu.Lock()
	n := len(s.wprio) + len(s.wnormal)
	s.wmu.Unlock()
	return n
}

func (s *Session) writeLoop() {
	defer s.wg.Done()
	bw := bufio.NewWriterSize(s.conn, writeBufSize)
	w := frameWriter{bw: bw, conn: s.conn, bc: batcher(s.conn)}
	var spareP, spareN []*frame
	var err error
	for err == nil {
		s.wmu.Lock()
		for len(s.wprio)+len(s.wnormal) == 0 {
			s.wmu.Unlock()
			select {
			case <-s.wwake:
			case <-s.done:
				w.endBatch()
				s.drainWriter()
				return
			}
			s.wmu.Lock()
		}
		p, n := s.wprio, s.wnormal
		s.wprio, s.wnormal = spareP[:0], spareN[:0]
		s.wmu.Unlock()

		w.beginBatch()
		err = s.writeFrames(&w, p, nil)
		err = s.writeFrames(&w, n, err)
		clear(p)
		clear(n)
		spareP, spareN = p[:0], n[:0]
		if err != nil {
			break
		}
		s.wmu.Lock()
		empty := len(s.wprio)+len(s.wnormal) == 0
		s.wmu.Unlock()
		if empty {
			err = w.flush()
		}
	}
	w.endBatch()
	s.closeWithError(connLost{fmt.Errorf("%w: write: %w", ErrSessionClosed, err)})
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
