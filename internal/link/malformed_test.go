package link

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func rawFrame(t frameType, id uint32, payload []byte) []byte {
	var h [hdrSize]byte
	putHeader(&h, t, id, len(payload))
	return append(h[:], payload...)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// rawServer runs a Server session whose peer is the test, writing raw
// bytes; everything the session writes is read and dropped.
func rawServer(t testing.TB, cfg Config) (*Session, net.Conn) {
	a, b := tcpPair(t)
	s := Server(a, patient(cfg))
	go io.Copy(io.Discard, b)
	t.Cleanup(func() {
		b.Close()
		s.Close()
		s.wg.Wait()
	})
	return s, b
}

func TestMalformedFrames(t *testing.T) {
	open := rawFrame(typeOpen, 1, be32(64<<10))
	cases := []struct {
		name string
		in   []byte
	}{
		{"bad version", []byte{9, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'x'}},
		{"unknown type", rawFrame(numTypes, 1, nil)},
		{"type 255", []byte{0, 255, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"flags set", []byte{0, byte(typeFin), 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"oversize data length", []byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}},
		{"oversize control", []byte{0, byte(typeControl), 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 1}},
		{"window wrong length", rawFrame(typeWindow, 1, []byte{0, 0, 1})},
		{"ping on stream", rawFrame(typePing, 1, make([]byte, 8))},
		{"data on stream 0", rawFrame(typeData, 0, []byte("x"))},
		{"data for unknown stream", rawFrame(typeData, 7, []byte("x"))},
		{"open with our parity", rawFrame(typeOpen, 2, be32(1))},
		{"open zero window", rawFrame(typeOpen, 1, be32(0))},
		{"open id reused", append(bytes.Clone(open), open...)},
		{"data before confirm", append(bytes.Clone(open), rawFrame(typeData, 1, []byte("x"))...)},
		{"confirm for peer's stream", append(bytes.Clone(open), rawFrame(typeConfirm, 1, be32(1))...)},
		{"truncated header", []byte{0, 0, 0}},
		{"truncated payload", rawFrame(typeControl, 0, []byte("hello"))[:hdrSize+2]},
		{"zero window increment", append(bytes.Clone(open), rawFrame(typeWindow, 1, be32(0))...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, peer := rawServer(t, Config{})
			go func() {
				peer.Write(tc.in)
				if tc.name == "truncated header" || tc.name == "truncated payload" {
					peer.(*net.TCPConn).CloseWrite()
				}
			}()
			waitDone(t, s)
			if !errors.Is(s.Err(), ErrProtocol) {
				t.Fatalf("err %v, want ErrProtocol", s.Err())
			}
		})
	}
}

func waitDone(t testing.TB, s *Session) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session not closed")
	}
}

// TestDataBeyondWindow uses a confirmed stream, which needs the real
// Accept/Confirm path.
func TestDataBeyondWindow(t *testing.T) {
	s, peer := rawServer(t, Config{StreamWindow: 64 << 10})
	go peer.Write(rawFrame(typeOpen, 1, be32(64<<10)))
	st, err := s.Accept(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	st.Confirm()
	go func() {
		chunk := rawFrame(typeData, 1, make([]byte, 60<<10))
		peer.Write(chunk)
		peer.Write(chunk) // 120 KiB > 64 KiB window, nobody reads
	}()
	waitDone(t, s)
	if !errors.Is(s.Err(), ErrProtocol) {
		t.Fatalf("err %v", s.Err())
	}
}

// Late frames for a stream that is gone are dropped, not violations.
func TestLateFramesIgnored(t *testing.T) {
	got := make(chan []byte, 1)
	s, peer := rawServer(t, Config{OnControl: func(m []byte) { got <- m }})
	go peer.Write(rawFrame(typeOpen, 1, be32(64<<10)))
	st, err := s.Accept(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	st.Reset(1)
	eventually(t, 5*time.Second, "removed", func() bool { return s.Stats().StreamsActive == 0 })
	var in []byte
	in = append(in, rawFrame(typeWindow, 1, be32(5))...)
	in = append(in, rawFrame(typeFin, 1, nil)...)
	in = append(in, rawFrame(typeRst, 1, []byte{0, 1})...)
	in = append(in, rawFrame(typeControl, 0, []byte("still alive"))...)
	peer.Write(in)
	select {
	case m := <-got:
		if string(m) != "still alive" {
			t.Fatalf("control %q", m)
		}
	case <-s.Done():
		t.Fatalf("closed: %v", s.Err())
	}
}
