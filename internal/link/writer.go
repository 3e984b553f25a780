package link

import (
	"bufio"
	"fmt"
)

// frame is one queued outgoing frame. payload is borrowed from the caller
// (who waits on done) or owned (returned to the pool once written).
type frame struct {
	hdr     [hdrSize]byte
	small   [8]byte // backing for short control payloads
	payload []byte
	owned   *[]byte
	done    chan error // receives the write result when non-nil; cap >= 1
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
	s.wmu.Lock()
	if s.wclosed {
		s.wmu.Unlock()
		if f.owned != nil {
			putBuf(f.owned)
			f.owned = nil
		}
		return s.closedErr()
	}
	wake := len(s.wprio)+len(s.wnormal) == 0
	if prio {
		s.wprio = append(s.wprio, f)
	} else {
		s.wnormal = append(s.wnormal, f)
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
	var spareP, spareN []*frame
	var err error
	for err == nil {
		s.wmu.Lock()
		for len(s.wprio)+len(s.wnormal) == 0 {
			s.wmu.Unlock()
			select {
			case <-s.wwake:
			case <-s.done:
				s.drainWriter()
				return
			}
			s.wmu.Lock()
		}
		p, n := s.wprio, s.wnormal
		s.wprio, s.wnormal = spareP[:0], spareN[:0]
		s.wmu.Unlock()

		err = s.writeFrames(bw, p, nil)
		err = s.writeFrames(bw, n, err)
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
			err = bw.Flush()
		}
	}
	s.closeWithError(fmt.Errorf("%w: write: %w", ErrSessionClosed, err))
	s.drainWriter()
}

// writeFrames writes fs to bw and answers each frame; after an error it only
// answers.
func (s *Session) writeFrames(bw *bufio.Writer, fs []*frame, err error) error {
	for _, f := range fs {
		if err == nil {
			if _, err = bw.Write(f.hdr[:]); err == nil && len(f.payload) > 0 {
				_, err = bw.Write(f.payload)
			}
			if frameType(f.hdr[1]) == typePong {
				s.pongQueued.Store(false)
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
