package link

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// errGoAway ends the read loop after the peer said GOAWAY.
var errGoAway = errors.New("goaway")

func (s *Session) readLoop() {
	defer s.wg.Done()
	defer s.flushSinks()
	br := bufio.NewReaderSize(s.conn, readBufSize)
	var hdr [hdrSize]byte
	var err error
	for {
		if _, err = io.ReadFull(br, hdr[:]); err != nil {
			break
		}
		s.lastRecv.Store(s.now())
		t, id, n, herr := checkHeader(hdr[:])
		if herr != nil {
			err = herr
			break
		}
		if err = s.handleFrame(br, t, id, n); err != nil {
			break
		}
	}
	switch {
	case err == errGoAway:
	case errors.Is(err, ErrProtocol):
		s.failProtocol(err)
	case err == io.EOF:
		s.closeWithError(connLost{fmt.Errorf("%w: connection closed by peer", ErrSessionClosed)})
	case err == io.ErrUnexpectedEOF:
		s.failProtocol(protoErr("truncated frame"))
	default:
		s.closeWithError(connLost{fmt.Errorf("%w: read: %w", ErrSessionClosed, err)})
	}
}

// failProtocol tells the peer why (GOAWAY, best effort) and closes.
func (s *Session) failProtocol(err error) {
	select {
	case <-s.done:
		return
	default:
	}
	s.log.Warn("link protocol violation by peer", "err", err)
	s.goAway(goAwayProtocol, err)
}

// readPayload reads n bytes into a fresh slice; only for bounded, rare
// frames (OPEN, REJECT, CONTROL).
func readPayload(br *bufio.Reader, n uint32) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(br, b)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return b, err
}

// directRead is the size from which the rest of a DATA payload is read
// from the connection itself rather than through the read loop's bufio.
const directRead = 4 << 10

// readData fills p with a DATA payload: first what br holds, then, when
// much is left, straight from conn (br's source) into p. Over TLS each Read
// returns at most one record, which bufio would copy once more on its way
// to p: a bulk stream's every byte. br is empty then, so nothing is read
// out of order.
func readData(br *bufio.Reader, conn io.Reader, p []byte) error {
	var n int
	if k := min(len(p), br.Buffered()); k > 0 {
		n, _ = br.Read(p[:k])
	}
	var err error
	if rest := p[n:]; len(rest) >= directRead {
		_, err = io.ReadFull(conn, rest)
	} else if len(rest) > 0 {
		_, err = io.ReadFull(br, rest)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func discard(br *bufio.Reader, n uint32) error {
	k, err := br.Discard(int(n))
	if k < int(n) && (err == nil || err == io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// lookup finds the stream a frame is for. A nil stream and nil error mean a
// stream that existed and is gone: its late frames are dropped. An ID that
// never existed is a protocol violation.
func (s *Session) lookup(t frameType, id uint32) (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[id]; st != nil {
		return st, nil
	}
	ours := (id%2 == 1) == s.client
	if ours && uint64(id) < s.nextID || !ours && id <= s.peerID {
		return nil, nil
	}
	return nil, protoErr("%v for unknown stream %d", t, id)
}

func (s *Session) handleFrame(br *bufio.Reader, t frameType, id, n uint32) error {
	if t == typeData {
		st, err := s.lookup(t, id)
		if st == nil {
			if err == nil {
				err = discard(br, n)
			}
			return err
		}
		return st.recvData(br, n)
	}
	// small escapes to the heap (io.ReadFull): declared past DATA, the
	// frame of every message, so that only control frames pay for it.
	var small [8]byte
	switch t {
	case typeWindow, typeConfirm, typeRst, typePing, typePong, typeGoAway, typeProbe:
		if _, err := io.ReadFull(br, small[:n]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}

	switch t {
	case typeWindow:
		st, err := s.lookup(t, id)
		if st == nil {
			return err
		}
		return st.recvWindowUpdate(binary.BigEndian.Uint32(small[:4]))

	case typeOpen:
		return s.recvOpen(br, id, n)

	case typeConfirm:
		st, err := s.lookup(t, id)
		if st == nil {
			return err
		}
		return st.recvConfirm(binary.BigEndian.Uint32(small[:4]))

	case typeReject:
		b, err := readPayload(br, n)
		if err != nil {
			return err
		}
		st, err := s.lookup(t, id)
		if st == nil {
			return err
		}
		return st.recvReject(binary.BigEndian.Uint16(b), string(b[2:]))

	case typeFin:
		st, err := s.lookup(t, id)
		if st == nil {
			return err
		}
		return st.recvFin()

	case typeRst:
		st, err := s.lookup(t, id)
		if st == nil {
			return err
		}
		st.recvReset(binary.BigEndian.Uint16(small[:2]))
		return nil

	case typePing:
		s.det.ping(s.lastRecv.Load())
		// One PONG in the queue at a time: a peer that floods PINGs
		// without reading gets no more.
		if s.pongQueued.CompareAndSwap(false, true) {
			f := newCtlFrame(typePong, 0, 8)
			copy(f.payload, small[:8])
			if s.enqueue(f, true) != nil {
				s.pongQueued.Store(false)
			}
		}
		return nil

	case typePong:
		s.onPong(small[:8])
		return nil

	case typeProbe:
		s.answerProbe(small[:8])
		return nil

	case typeControl:
		b, err := readPayload(br, n)
		if err != nil {
			return err
		}
		if s.cfg.OnControl != nil {
			s.cfg.OnControl(b)
		}
		return nil

	case typeGoAway:
		code := binary.BigEndian.Uint32(small[:4])
		var err error
		switch code {
		case goAwayNormal:
			err = fmt.Errorf("%w by peer", ErrSessionClosed)
		case goAwayProtocol:
			err = fmt.Errorf("%w by peer: peer reports a protocol violation by us", ErrSessionClosed)
		default:
			err = fmt.Errorf("%w by peer (GOAWAY code %d)", ErrSessionClosed, code)
		}
		s.closeWithError(err)
		return errGoAway
	}
	return protoErr("unhandled frame type %v", t)
}

func (s *Session) recvOpen(br *bufio.Reader, id, n uint32) error {
	b, err := readPayload(br, n)
	if err != nil {
		return err
	}
	window := binary.BigEndian.Uint32(b)
	if window == 0 {
		return protoErr("OPEN %d with zero window", id)
	}
	if (id%2 == 1) == s.client {
		return protoErr("OPEN %d with our parity", id)
	}
	s.mu.Lock()
	if id <= s.peerID {
		s.mu.Unlock()
		return protoErr("OPEN %d not above previous %d", id, s.peerID)
	}
	s.peerID = id
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	if len(s.streams) >= s.cfg.MaxStreams {
		s.mu.Unlock()
		return s.replyReject(id, CodeStreamLimit, "too many streams")
	}
	st := newStream(s, id, stateAccepted, b[openPrefix:])
	st.sendWindow = window
	if s.cfg.OnStream != nil {
		s.streams[id] = st
		s.nActive.Add(1)
		s.nAccepted.Add(1)
		s.mu.Unlock()
		s.cfg.OnStream(st)
		return nil
	}
	select {
	case s.acceptCh <- st:
	default:
		s.mu.Unlock()
		return s.replyReject(id, CodeBacklog, "accept backlog full")
	}
	s.streams[id] = st
	s.nActive.Add(1)
	s.nAccepted.Add(1)
	s.mu.Unlock()
	return nil
}

// replyReject answers from the read loop, refusing to pile up replies for a
// peer that does not read them.
func (s *Session) replyReject(id uint32, code uint16, msg string) error {
	if s.queueLen() >= maxQueued {
		return fmt.Errorf("%w: peer does not read our replies", net.ErrClosed)
	}
	s.nFailed.Add(1)
	s.enqueue(rejectFrame(id, code, msg), false)
	return nil
}

func rejectFrame(id uint32, code uint16, msg string) *frame {
	if len(msg) > MaxRejectMsgLen {
		msg = msg[:MaxRejectMsgLen]
	}
	f := newCtlFrame(typeReject, id, 2+len(msg))
	binary.BigEndian.PutUint16(f.payload, code)
	copy(f.payload[2:], msg)
	return f
}

func rstFrame(id uint32, code uint16) *frame {
	f := newCtlFrame(typeRst, id, 2)
	binary.BigEndian.PutUint16(f.payload, code)
	return f
}
