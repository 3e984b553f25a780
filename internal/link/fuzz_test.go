package link

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

func FuzzSession(f *testing.F) {
	open := rawFrame(typeOpen, 1, be32(64<<10))
	seed := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	f.Add(seed(open, rawFrame(typeData, 1, []byte("hello")), rawFrame(typeFin, 1, nil)))
	f.Add(seed(open, rawFrame(typeWindow, 1, be32(1000)), rawFrame(typeRst, 1, []byte{0, 3})))
	f.Add(seed(rawFrame(typePing, 0, make([]byte, 8)), rawFrame(typePong, 0, make([]byte, 8)), rawFrame(typeControl, 0, []byte("ctl"))))
	f.Add(seed(open, rawFrame(typeOpen, 3, be32(1)), rawFrame(typeData, 3, []byte("xy")), rawFrame(typeGoAway, 0, be32(0))))
	f.Add(seed(rawFrame(typeConfirm, 2, be32(5)), rawFrame(typeReject, 2, []byte{0, 1, 'n'})))
	f.Add(seed(rawFrame(typeProbe, 0, make([]byte, 8)), rawFrame(typeProbe, 0, make([]byte, 8)), rawFrame(typePong, 0, make([]byte, 8))))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		s := Server(a, Config{StreamWindow: 64 << 10, MaxStreams: 64, AcceptBacklog: 8})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); io.Copy(io.Discard, b) }()
		go func() { // accept everything and read it, like a connector site
			defer wg.Done()
			for {
				st, err := s.Accept(context.Background())
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					st.Confirm()
					st.Write([]byte("hi"))
					io.Copy(io.Discard, st)
					st.Close()
				}()
			}
		}()
		feedAndEnd(t, s, b, in)
		wg.Wait()
	})
}

// FuzzClientSession is FuzzSession from the dialing side: a client that has
// opened three streams (IDs 1, 3, 5) reads any bytes from its peer, so that
// CONFIRM, REJECT, WINDOW, data and resets reach streams it opened. The
// session must end once its peer closed, and every Open and stream must
// return.
func FuzzClientSession(f *testing.F) {
	seed := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	f.Add(seed(rawFrame(typeConfirm, 1, be32(64<<10)), rawFrame(typeData, 1, []byte("hello")), rawFrame(typeFin, 1, nil)))
	f.Add(seed(rawFrame(typeReject, 3, append([]byte{0, 2}, "no"...)), rawFrame(typeConfirm, 5, be32(1)), rawFrame(typeWindow, 5, be32(1000)), rawFrame(typeRst, 5, []byte{0, 3})))
	f.Add(seed(rawFrame(typeConfirm, 1, be32(1)), rawFrame(typeConfirm, 1, be32(1)), rawFrame(typeReject, 1, []byte{0, 1})))
	f.Add(seed(rawFrame(typeOpen, 2, be32(64<<10)), rawFrame(typeConfirm, 7, be32(5)), rawFrame(typeGoAway, 0, be32(1))))
	f.Add(seed(rawFrame(typePing, 0, make([]byte, 8)), rawFrame(typeControl, 0, []byte("ctl")), rawFrame(typeReject, 5, []byte{0})))
	const streams = 3
	header := []byte("hdr")
	opens := streams * (hdrSize + openPrefix + len(header))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		s := Client(a, Config{StreamWindow: 64 << 10, MaxStreams: 64})
		sent := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1 + streams)
		go func() { // the peer's reader: the OPENs, then whatever comes
			defer wg.Done()
			if _, err := io.ReadFull(b, make([]byte, opens)); err == nil {
				close(sent)
			}
			io.Copy(io.Discard, b)
		}()
		for range streams {
			go func() {
				defer wg.Done()
				st, err := s.Open(context.Background(), header)
				if err != nil {
					return
				}
				st.Write([]byte("hi"))
				io.Copy(io.Discard, st)
				st.Close()
			}()
		}
		select {
		case <-sent:
		case <-time.After(5 * time.Second):
			t.Fatal("the client did not send its OPENs")
		}
		feedAndEnd(t, s, b, in)
		wg.Wait()
	})
}

// feedAndEnd writes in to the session s from its peer's end b, closes b,
// and waits until s has ended.
func feedAndEnd(t *testing.T, s *Session, b net.Conn, in []byte) {
	b.SetWriteDeadline(time.Now().Add(5 * time.Second))
	b.Write(in)
	b.Close()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end after its peer closed")
	}
	s.wg.Wait()
}
