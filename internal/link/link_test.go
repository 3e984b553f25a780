package link

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type transport struct {
	name string
	pair func(t testing.TB) (net.Conn, net.Conn)
}

var transports = []transport{
	{"pipe", func(testing.TB) (net.Conn, net.Conn) { return net.Pipe() }},
	{"tcp", tcpPair},
}

// streamTransports add TLS over BufferedConns, as sites make links, for
// the stream tests. The fake-clock tests (clock_test.go, detector_test.go,
// stall_test.go) test timing logic that no transport changes.
var streamTransports = append(transports[:len(transports):len(transports)], transport{"tls-buffered", bufferedTLSPair})

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	return a, b
}

// patient gives a test session that sets no DeadAfter a long one. Those
// tests are about streams and framing on the real clock; liveness is tested
// on a fake clock (clock_test.go). With the 2s default, a machine starved
// enough to stall the peer's writer that long (seen under -race next to two
// CPU hogs) declares the peer dead mid-test.
func patient(cfg Config) Config {
	if cfg.DeadAfter == 0 {
		cfg.DeadAfter = time.Minute
	}
	return cfg
}

// sessions starts a client/server pair and closes both when the test ends.
func sessions(t testing.TB, tr transport, cc, sc Config) (*Session, *Session) {
	a, b := tr.pair(t)
	c, s := Client(a, patient(cc)), Server(b, patient(sc))
	t.Cleanup(func() {
		c.Close()
		s.Close()
		<-c.Done()
		<-s.Done()
		c.wg.Wait()
		s.wg.Wait()
	})
	return c, s
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openPair opens a stream from c and confirms it on s.
func openPair(t testing.TB, c, s *Session, hdr []byte) (*Stream, *Stream) {
	t.Helper()
	ctx := ctxT(t)
	type res struct {
		st  *Stream
		err error
	}
	ch := make(chan res, 1)
	go func() {
		st, err := s.Accept(ctx)
		if err == nil {
			err = st.Confirm()
		}
		ch <- res{st, err}
	}()
	a, err := c.Open(ctx, hdr)
	if err != nil {
		t.Fatal("open:", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal("accept:", r.err)
	}
	if !bytes.Equal(r.st.Header(), hdr) {
		t.Fatalf("header %q, want %q", r.st.Header(), hdr)
	}
	return a, r.st
}

func forTransports(t *testing.T, f func(t *testing.T, tr transport)) {
	forEach(t, transports, f)
}

func forStreamTransports(t *testing.T, f func(t *testing.T, tr transport)) {
	forEach(t, streamTransports, f)
}

func forEach(t *testing.T, trs []transport, f func(t *testing.T, tr transport)) {
	for _, tr := range trs {
		t.Run(tr.name, func(t *testing.T) { f(t, tr) })
	}
}

// sendRandom writes n seeded random bytes in random-sized writes and
// returns their hash.
func sendRandom(w io.Writer, seed uint64, n int) ([32]byte, error) {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	src := rand.NewChaCha8(s)
	rng := rand.New(src)
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, 1+rng.IntN(len(buf)))
		src.Read(buf[:k])
		h.Write(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return [32]byte{}, err
		}
		n -= k
	}
	return [32]byte(h.Sum(nil)), nil
}

func recvHash(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return [32]byte(h.Sum(nil)), n, err
}

func TestStreamsBothWays(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		c, s := sessions(t, tr, Config{StreamWindow: 64 << 10}, Config{StreamWindow: 64 << 10})
		const streams, size = 24, 300 << 10
		var wg sync.WaitGroup
		errs := make(chan error, 4*streams)
		check := func(name string, want [32]byte, r io.Reader) {
			got, n, err := recvHash(r)
			if err != nil || got != want {
				errs <- errors.New(name + ": checksum mismatch or error")
				t.Errorf("%s: %d bytes, err %v, hash ok %v", name, n, err, got == want)
			}
		}
		for i := range streams {
			a, b := openPair(t, c, s, []byte{byte(i)})
			wg.Add(2)
			go func() { // client -> server and back
				defer wg.Done()
				want, _ := sendRandom(io.Discard, uint64(i), size)
				go func() {
					sendRandom(a, uint64(i), size)
					a.CloseWrite()
				}()
				check("c->s", want, b)
			}()
			go func() {
				defer wg.Done()
				want, _ := sendRandom(io.Discard, uint64(1000+i), size)
				go func() {
					sendRandom(b, uint64(1000+i), size)
					b.CloseWrite()
				}()
				check("s->c", want, a)
			}()
		}
		wg.Wait()
		close(errs)
		eventually(t, 5*time.Second, "streams removed", func() bool {
			return c.Stats().StreamsActive == 0 && s.Stats().StreamsActive == 0
		})
		st := c.Stats()
		if st.StreamsOpened != streams || st.BytesSent != streams*size || st.BytesReceived != streams*size {
			t.Errorf("client stats %+v", st)
		}
		if ss := s.Stats(); ss.StreamsAccepted != streams {
			t.Errorf("server stats %+v", ss)
		}
	})
}

func TestStalledReaderDoesNotStallOthers(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		cfg := Config{StreamWindow: 256 << 10}
		c, s := sessions(t, tr, cfg, cfg)
		stalledW, stalledR := openPair(t, c, s, []byte("stalled"))
		_ = stalledR // never read
		// Fill the stalled stream's window: the last Write blocks, shown by
		// its deadline firing.
		stalledW.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := stalledW.Write(make([]byte, 1<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) || n != 256<<10 {
			t.Fatalf("stalled write: n=%d err=%v, want window-limited timeout", n, err)
		}
		// Another stream moves many windows' worth meanwhile.
		a, b := openPair(t, c, s, []byte("flowing"))
		const size = 32 << 20
		done := make(chan error, 1)
		go func() {
			_, err := sendRandom(a, 7, size)
			a.CloseWrite()
			done <- err
		}()
		want, _ := sendRandom(io.Discard, 7, size)
		got, n64, err := recvHash(b)
		if err != nil || got != want || n64 != size {
			t.Fatalf("flowing stream: n=%d err=%v ok=%v", n64, err, got == want)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// The stalled stream resumes once read.
		buf := make([]byte, 256<<10)
		if _, err := io.ReadFull(stalledR, buf); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHalfClose(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		c, s := sessions(t, tr, Config{}, Config{})
		a, b := openPair(t, c, s, nil)
		// Client finishes its request first, then reads the response.
		a.Write([]byte("request"))
		a.CloseWrite()
		got, err := io.ReadAll(b)
		if err != nil || string(got) != "request" {
			t.Fatalf("server read %q %v", got, err)
		}
		if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after CloseWrite: %v", err)
		}
		b.Write([]byte("response"))
		b.CloseWrite()
		got, err = io.ReadAll(a)
		if err != nil || string(got) != "response" {
			t.Fatalf("client read %q %v", got, err)
		}
		eventually(t, 5*time.Second, "stream removed", func() bool {
			return c.Stats().StreamsActive == 0 && s.Stats().StreamsActive == 0
		})
		a.Close()
		b.Close()
	})
}

// TestWriteClose: the data then EOF, on the one-batch path (short data)
// and the fallback (data past copyWrite); both ends half-closed remove the
// stream.
func TestWriteClose(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		c, s := sessions(t, tr, Config{}, Config{})
		a, b := openPair(t, c, s, nil)
		big := bytes.Repeat([]byte("r"), copyWrite+1)
		if n, err := a.WriteClose([]byte("request")); n != 7 || err != nil {
			t.Fatalf("WriteClose: %d %v", n, err)
		}
		got, err := io.ReadAll(b)
		if err != nil || string(got) != "request" {
			t.Fatalf("server read %q %v", got, err)
		}
		if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after WriteClose: %v", err)
		}
		if _, err := a.WriteClose([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("WriteClose after WriteClose: %v", err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := b.WriteClose(big)
			done <- err
		}()
		got, err = io.ReadAll(a)
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("client read %d bytes %v, want %d", len(got), err, len(big))
		}
		if err := <-done; err != nil {
			t.Fatalf("WriteClose of %d bytes: %v", len(big), err)
		}
		eventually(t, 5*time.Second, "stream removed", func() bool {
			return c.Stats().StreamsActive == 0 && s.Stats().StreamsActive == 0
		})
		a.Close()
		b.Close()
	})
}

// CopyClose relays a stream and its FIN: with the last data when the FIN
// is in by then (one WriteClose), after it otherwise.
func TestCopyClose(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		c, s := sessions(t, tr, Config{}, Config{})
		for _, finFirst := range []bool{true, false} {
			a, b := openPair(t, c, s, nil) // b relays to x
			x, y := openPair(t, c, s, nil)
			if _, err := a.Write([]byte("data")); err != nil {
				t.Fatal(err)
			}
			type res struct {
				n   int64
				err error
			}
			done := make(chan res, 1)
			if finFirst {
				a.WriteClose([]byte("end"))
				eventually(t, 5*time.Second, "FIN at the relay", func() bool {
					b.mu.Lock()
					defer b.mu.Unlock()
					return b.finRecv
				})
			}
			go func() {
				n, err := b.CopyClose(x)
				done <- res{n, err}
			}()
			if !finFirst {
				got := make([]byte, 4)
				if _, err := io.ReadFull(y, got); err != nil || string(got) != "data" {
					t.Fatalf("relayed %q %v before the FIN", got, err)
				}
				a.WriteClose([]byte("end"))
			}
			got, err := io.ReadAll(y)
			if want := map[bool]string{true: "dataend", false: "end"}[finFirst]; err != nil || string(got) != want {
				t.Fatalf("FIN first %v: relayed %q %v, want %q", finFirst, got, err, want)
			}
			if r := <-done; r.err != nil || r.n != 7 {
				t.Fatalf("FIN first %v: CopyClose %d %v", finFirst, r.n, r.err)
			}
			x.mu.Lock()
			closed := x.writeClosed && x.finQueued
			x.mu.Unlock()
			if !closed {
				t.Fatal("relay not half-closed")
			}
			for _, st := range []*Stream{a, b, x, y} {
				st.Close()
			}
		}
	})
}

func TestReset(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		c, s := sessions(t, tr, Config{}, Config{})
		a, b := openPair(t, c, s, nil)
		readErr := make(chan error, 1)
		go func() {
			_, err := b.Read(make([]byte, 10))
			readErr <- err
		}()
		a.Reset(42)
		var re *ResetError
		if err := <-readErr; !errors.As(err, &re) || re.Code != 42 || !re.Remote {
			t.Fatalf("peer read after reset: %v", err)
		}
		if _, err := b.Write([]byte("x")); !errors.As(err, &re) {
			t.Fatalf("peer write after reset: %v", err)
		}
		if _, err := a.Read(make([]byte, 1)); !errors.As(err, &re) || re.Remote {
			t.Fatalf("local read after reset: %v", err)
		}
		eventually(t, 5*time.Second, "failed counted", func() bool {
			return c.Stats().StreamsFailed == 1 && s.Stats().StreamsFailed == 1 && s.Stats().StreamsActive == 0
		})
	})
}

func TestCloseWithUnreadDataResetsPeer(t *testing.T) {
	c, s := sessions(t, transports[1], Config{}, Config{})
	a, b := openPair(t, c, s, nil)
	a.Write([]byte("unread"))
	eventually(t, 5*time.Second, "data buffered", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.rq.n > 0
	})
	b.Close()
	var re *ResetError
	eventually(t, 5*time.Second, "writer reset", func() bool {
		_, err := a.Write([]byte("more"))
		return errors.As(err, &re) && re.Code == CodeClosed
	})
}

func TestReject(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		c, s := sessions(t, tr, Config{}, Config{})
		go func() {
			st, err := s.Accept(ctxT(t))
			if err == nil {
				st.Reject(7, "connection refused")
			}
		}()
		_, err := c.Open(ctxT(t), []byte("svc"))
		var rj *RejectError
		if !errors.As(err, &rj) || rj.Code != 7 || rj.Message != "connection refused" {
			t.Fatalf("open: %v", err)
		}
		eventually(t, 5*time.Second, "counters", func() bool {
			return c.Stats().StreamsFailed == 1 && c.Stats().StreamsActive == 0 && s.Stats().StreamsActive == 0
		})
	})
}

func TestOpenCanceled(t *testing.T) {
	c, s := sessions(t, transports[0], Config{}, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Open(ctx, nil)
		errc <- err
	}()
	st, err := s.Accept(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("open: %v", err)
	}
	var re *ResetError
	eventually(t, 5*time.Second, "acceptor sees reset", func() bool {
		return errors.As(st.Confirm(), &re) && re.Code == CodeCanceled
	})
	// The session survives a CONFIRM racing the cancel.
	a, b := openPair(t, c, s, []byte("after"))
	a.Close()
	b.Close()
}

func TestDeadlines(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		c, s := sessions(t, tr, Config{StreamWindow: 64 << 10}, Config{StreamWindow: 64 << 10})
		a, b := openPair(t, c, s, nil)
		a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := a.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read deadline: %v", err)
		}
		// A deadline set while blocked wakes the reader.
		a.SetReadDeadline(time.Time{})
		errc := make(chan error, 1)
		go func() {
			_, err := a.Read(make([]byte, 1))
			errc <- err
		}()
		a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("blocked read: %v", err)
		}
		// Cleared deadline: reads work again.
		a.SetReadDeadline(time.Time{})
		b.Write([]byte("z"))
		if _, err := io.ReadFull(a, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		// Write deadline once the window is used up.
		b.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := b.Write(make([]byte, 1<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) || n != 64<<10-1 {
			t.Fatalf("write deadline: n=%d %v", n, err)
		}
	})
}

func TestControlInOrder(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		var mu sync.Mutex
		var got [][]byte
		c, _ := sessions(t, tr, Config{}, Config{OnControl: func(m []byte) {
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}})
		const n = 200
		for i := range n {
			msg := bytes.Repeat([]byte{byte(i)}, i*37)
			if err := c.SendControl(msg); err != nil {
				t.Fatal(err)
			}
		}
		big := make([]byte, MaxControlLen)
		if err := c.SendControl(big); err != nil {
			t.Fatal(err)
		}
		if err := c.SendControl(make([]byte, MaxControlLen+1)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("oversize control: %v", err)
		}
		eventually(t, 5*time.Second, "control messages", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got) == n+1
		})
		for i := range n {
			if !bytes.Equal(got[i], bytes.Repeat([]byte{byte(i)}, i*37)) {
				t.Fatalf("message %d out of order or corrupt", i)
			}
		}
	})
}

func TestHeartbeatRTT(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		cfg := Config{HeartbeatInterval: 10 * time.Millisecond}
		c, s := sessions(t, tr, cfg, cfg)
		eventually(t, 5*time.Second, "RTT measured", func() bool {
			return c.RTT() > 0 && s.RTT() > 0
		})
		if c.RTT() > time.Second {
			t.Fatalf("implausible RTT %v", c.RTT())
		}
	})
}

func TestLargeTransfer(t *testing.T) {
	size := 256 << 20
	if testing.Short() {
		size = 32 << 20
	}
	c, s := sessions(t, transports[1], Config{}, Config{})
	a, b := openPair(t, c, s, nil)
	done := make(chan error, 1)
	go func() {
		_, err := sendRandom(a, 99, size)
		a.Close()
		done <- err
	}()
	want, _ := sendRandom(io.Discard, 99, size)
	got, n, err := recvHash(b)
	if err != nil || n != int64(size) || got != want {
		t.Fatalf("got %d bytes, err %v, checksum ok %v", n, err, got == want)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSessionClose(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		c, s := sessions(t, tr, Config{}, Config{})
		a, b := openPair(t, c, s, nil)
		c.Close()
		<-s.Done()
		if !errors.Is(s.Err(), ErrSessionClosed) || errors.Is(s.Err(), ErrProtocol) {
			t.Fatalf("peer err %v", s.Err())
		}
		if _, err := s.Accept(ctxT(t)); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("accept: %v", err)
		}
		if _, err := c.Open(ctxT(t), nil); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("open: %v", err)
		}
		if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("read: %v", err)
		}
		if _, err := a.Write([]byte("x")); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("write: %v", err)
		}
	})
}

// A close by either side is not a lost connection; a connection that
// breaks under a session (the peer killed: its socket closes without a
// GOAWAY) is, so that sites can tell a vanished peer from a deliberate close.
// Not over net.Pipe: there a write after the peer's close fails at once, so
// the writer may end the session before the reader has taken the GOAWAY; a
// socket takes that write and fails only a later one.
func TestConnLost(t *testing.T) {
	forEach(t, streamTransports[1:], func(t *testing.T, tr transport) {
		c, s := sessions(t, tr, Config{}, Config{})
		c.Close()
		<-s.Done()
		if errors.Is(c.Err(), ErrConnLost) || errors.Is(s.Err(), ErrConnLost) {
			t.Fatalf("closed with GOAWAY, yet lost: %v / %v", c.Err(), s.Err())
		}

		a, b := tr.pair(t)
		c, s = Client(a, patient(Config{})), Server(b, patient(Config{}))
		defer c.Close()
		defer s.Close()
		a.Close()
		<-s.Done()
		if !errors.Is(s.Err(), ErrConnLost) || !errors.Is(s.Err(), ErrSessionClosed) {
			t.Fatalf("peer's connection closed under it: %v, want ErrConnLost and ErrSessionClosed", s.Err())
		}
	})
}

// confirmAll confirms and closes every stream s accepts until s closes.
func confirmAll(s *Session) {
	for {
		st, err := s.Accept(context.Background())
		if err != nil {
			return
		}
		st.Confirm()
		st.Close()
	}
}

// Concurrent Opens must reach the peer with increasing IDs.
func TestConcurrentOpen(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		c, s := sessions(t, tr, Config{}, Config{})
		go confirmAll(s)
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					st, err := c.Open(ctxT(t), []byte("x"))
					if err != nil {
						t.Error(err)
						return
					}
					st.Close()
				}
			}()
		}
		wg.Wait()
		if c.Err() != nil || s.Err() != nil {
			t.Fatalf("session errors: %v / %v", c.Err(), s.Err())
		}
		if got := c.Stats().StreamsOpened; got != 640 {
			t.Fatalf("opened %d", got)
		}
	})
}

// A transit site splices stream to stream with io.Copy (WriteTo/ReadFrom);
// the data must arrive intact through two sessions.
func TestSpliceThroughTransit(t *testing.T) {
	tr := transports[1]
	c1, s1 := sessions(t, tr, Config{}, Config{})
	c2, s2 := sessions(t, tr, Config{}, Config{})
	in, transitIn := openPair(t, c1, s1, []byte("hop1"))
	transitOut, out := openPair(t, c2, s2, []byte("hop2"))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(transitOut, transitIn); transitOut.CloseWrite() }()
	go func() { defer wg.Done(); io.Copy(transitIn, transitOut); transitIn.CloseWrite() }()

	const size = 24 << 20
	var seed [32]byte
	src := io.LimitReader(rand.NewChaCha8(seed), size) // no WriterTo: exercises ReadFrom
	want, _, _ := recvHash(io.LimitReader(rand.NewChaCha8(seed), size))
	errc := make(chan error, 1)
	go func() {
		n, err := io.Copy(in, src)
		if err == nil && n != size {
			err = io.ErrShortWrite
		}
		in.CloseWrite()
		errc <- err
	}()
	go func() { io.Copy(out, out); out.CloseWrite() }() // echo at the far end
	got, n, err := recvHash(in)
	if err != nil || n != size || got != want {
		t.Fatalf("echo through transit: %d bytes, err %v, checksum ok %v", n, err, got == want)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

// TestOnStream: with Config.OnStream every stream the peer opens goes to
// the callback, none waits for Accept, and the accept backlog does not
// apply (a backlog of 1 would refuse three of four unaccepted streams).
func TestOnStream(t *testing.T) {
	forStreamTransports(t, func(t *testing.T, tr transport) {
		const n = 4
		got := make(chan *Stream, n)
		c, s := sessions(t, tr, Config{}, Config{AcceptBacklog: 1, OnStream: func(st *Stream) { got <- st }})
		ctx := ctxT(t)
		opened := make(chan *Stream, n)
		errc := make(chan error, n)
		for i := range n {
			go func() {
				st, err := c.Open(ctx, []byte{byte(i)})
				if err != nil {
					errc <- err
					return
				}
				opened <- st
			}()
		}
		// Unconfirmed until all four arrived: none was queued for Accept.
		var acc []*Stream
		for range n {
			select {
			case st := <-got:
				acc = append(acc, st)
			case err := <-errc:
				t.Fatal("open:", err)
			case <-ctx.Done():
				t.Fatal("OnStream not called for every stream")
			}
		}
		for _, st := range acc {
			if err := st.Confirm(); err != nil {
				t.Fatal(err)
			}
			go func() {
				io.Copy(st, st)
				st.CloseWrite()
			}()
		}
		for range n {
			var st *Stream
			select {
			case st = <-opened:
			case err := <-errc:
				t.Fatal("open:", err)
			}
			msg := []byte{st.Header()[0], 7}
			if _, err := st.WriteClose(msg); err != nil {
				t.Fatal(err)
			}
			echo, err := io.ReadAll(st)
			if err != nil || !bytes.Equal(echo, msg) {
				t.Fatalf("echo %q, %v; want %q", echo, err, msg)
			}
			st.Close()
		}
		s.Close()
		if _, err := s.Accept(ctx); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("Accept after close with OnStream: %v", err)
		}
	})
}
