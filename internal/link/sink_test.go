package link

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// sinkRun sends size random bytes on a stream of a TLS link over
// BufferedConns (as sites make links) and copies the far end with WriteTo
// to a TCP connection, as forward.Join does at the egress. With full, the
// sink reads nothing until a whole window is in at the far end, more than
// its socket buffers hold. It checks the bytes the sink got and WriteTo's count, and
// returns how many of them the read loop wrote itself, read while WriteTo
// still runs (before the FIN).
func sinkRun(t *testing.T, size int, full bool) int64 {
	c, s := sessions(t, streamTransports[2], Config{}, Config{})
	a, b := openPair(t, c, s, nil)
	egress, sink := tcpPair(t)
	t.Cleanup(func() { egress.Close(); sink.Close() })
	if full {
		// Small socket buffers, so that the sink's socket fills and the
		// read loop's writev meets EAGAIN.
		egress.(*net.TCPConn).SetWriteBuffer(16 << 10)
		sink.(*net.TCPConn).SetReadBuffer(16 << 10)
	}
	type copied struct {
		n   int64
		err error
	}
	done := make(chan copied, 1)
	go func() {
		n, err := b.WriteTo(egress)
		egress.(*net.TCPConn).CloseWrite()
		done <- copied{n, err}
	}()
	// The sender's FIN waits until the read loop's share is read, so that
	// it is read while WriteTo still runs.
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(a, io.LimitReader(rand.NewChaCha8([32]byte{7}), int64(size)))
		sent <- err
	}()
	got := make(chan [32]byte, 1)
	var n int64
	go func() {
		if full {
			eventually(t, 20*time.Second, "a window received", func() bool {
				return s.Stats().BytesReceived >= defaultWindow
			})
		}
		sum, k, err := recvHash(sink)
		if err != nil {
			t.Error(err)
		}
		n = k
		got <- sum
	}()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "every byte queued or written", func() bool {
		st := s.Stats()
		return st.BytesReceived == uint64(size)
	})
	// Wait until WriteTo or the read loop has taken everything, then read
	// the read loop's share before the FIN ends WriteTo.
	eventually(t, 20*time.Second, "the queue drained", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.rq.n == 0 && !b.sinkPending
	})
	b.mu.Lock()
	direct := b.sinkWrote
	b.mu.Unlock()
	a.CloseWrite()
	want, _, _ := recvHash(io.LimitReader(rand.NewChaCha8([32]byte{7}), int64(size)))
	if sum := <-got; sum != want || n != int64(size) {
		t.Fatalf("sink got %d bytes, checksum ok %v; want %d", n, sum == want, size)
	}
	r := <-done
	if r.err != nil || r.n != int64(size) {
		t.Fatalf("WriteTo: %d bytes, %v; want %d", r.n, r.err, size)
	}
	return direct
}

// A bulk stream's data reaches a TCP sink from the session's read loop,
// not through WriteTo's goroutine, and arrives whole and in order.
func TestWriteToDirectSink(t *testing.T) {
	const size = 16 << 20
	direct := sinkRun(t, size, false)
	t.Logf("read loop wrote %d of %d bytes", direct, size)
	// The sink reads as fast as it can: only a frame that came while
	// WriteTo was writing goes through WriteTo.
	if direct < size/2 {
		t.Fatalf("the read loop wrote %d of %d bytes to the sink: the direct path is not taken", direct, size)
	}
}

// A sink that does not read fills its socket: the read loop never waits
// on it, WriteTo writes the rest, and nothing is lost or reordered.
func TestWriteToDirectSinkFull(t *testing.T) {
	const size = 8 << 20
	direct := sinkRun(t, size, true)
	t.Logf("read loop wrote %d of %d bytes", direct, size)
	if direct == size {
		t.Fatal("the read loop wrote everything to a sink that did not read: its writes waited")
	}
}

// writerConn counts the bytes written to it from the goroutine of a
// Stream.ReadFrom, as opposed to the session's writer goroutine.
type writerConn struct {
	net.Conn
	mu            sync.Mutex
	all, readFrom int64
}

func (c *writerConn) Write(p []byte) (int, error) {
	buf := make([]byte, 16<<10)
	fromReadFrom := bytes.Contains(buf[:runtime.Stack(buf, false)], []byte("(*Stream).ReadFrom"))
	c.mu.Lock()
	c.all += int64(len(p))
	if fromReadFrom {
		c.readFrom += int64(len(p))
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// A bulk ReadFrom writes its frames to the link itself while the writer
// goroutine is idle, instead of waking it for every read; what it sends
// arrives whole, with small writes on other streams in between.
func TestReadFromWritesLink(t *testing.T) {
	a, b := tcpPair(t)
	wc := &writerConn{Conn: a}
	ca, cb := tlsHandshake(t, NewBufferedConn(wc), NewBufferedConn(b))
	c, s := Client(ca, patient(Config{})), Server(cb, patient(Config{}))
	t.Cleanup(func() {
		c.Close()
		s.Close()
		c.wg.Wait()
		s.wg.Wait()
	})
	bulk, bulkPeer := openPair(t, c, s, nil)
	small, smallPeer := openPair(t, c, s, nil)
	const size, smallWrites = 32 << 20, 200
	errc := make(chan error, 2)
	go func() {
		_, err := bulk.ReadFrom(io.LimitReader(rand.NewChaCha8([32]byte{9}), size))
		bulk.CloseWrite()
		errc <- err
	}()
	go func() { // frames for the writer goroutine meanwhile
		var err error
		for i := 0; i < smallWrites && err == nil; i++ {
			_, err = small.Write([]byte("ping"))
		}
		small.CloseWrite()
		errc <- err
	}()
	want, _, _ := recvHash(io.LimitReader(rand.NewChaCha8([32]byte{9}), size))
	if got, n, err := recvHash(bulkPeer); err != nil || n != size || got != want {
		t.Fatalf("bulk stream: %d bytes, %v, checksum ok %v", n, err, got == want)
	}
	if got, err := io.ReadAll(smallPeer); err != nil || len(got) != 4*smallWrites {
		t.Fatalf("small stream: %d bytes, %v", len(got), err)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	wc.mu.Lock()
	defer wc.mu.Unlock()
	t.Logf("ReadFrom wrote %d of %d bytes to the link", wc.readFrom, wc.all)
	if wc.readFrom < wc.all/4 {
		t.Fatalf("ReadFrom's goroutine wrote %d of %d bytes to the link: the writer goroutine did the rest", wc.readFrom, wc.all)
	}
}

// Under request/response traffic the read loop flushes a sink once per
// message, so a flush that allocated would make the garbage collector run
// in step with the message rate (bench/README.md, "p99 of 1 KiB
// request/response").
func TestFlushSinkDoesNotAllocate(t *testing.T) {
	c, s := sessions(t, streamTransports[2], Config{}, Config{})
	_, b := openPair(t, c, s, nil)
	egress, sink := tcpPair(t)
	t.Cleanup(func() { egress.Close(); sink.Close() })
	b.setSink(sinkOf(egress))
	b.mu.Lock()
	direct := b.sink != nil
	b.mu.Unlock()
	if !direct {
		t.Fatal("no direct sink over a BufferedConn")
	}
	const flushes = 100
	msg := bytes.Repeat([]byte("weft"), 256)
	got := make([]byte, len(msg))
	var ms runtime.MemStats
	var allocs uint64
	for range flushes {
		b.mu.Lock()
		p := getBuf(len(msg))
		copy(*p, msg)
		b.rq.push(p)
		b.sinkIdle = true // as while WriteTo waits in ReadBuffer
		b.mu.Unlock()
		runtime.ReadMemStats(&ms)
		before := ms.Mallocs
		b.flushSink()
		runtime.ReadMemStats(&ms)
		allocs += ms.Mallocs - before
		b.mu.Lock()
		b.sinkIdle = false
		left := b.rq.n
		b.mu.Unlock()
		if left != 0 {
			t.Fatalf("%d bytes still queued after a flush to a reading sink", left)
		}
		if _, err := io.ReadFull(sink, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("sink read %q, %v; want the message", got, err)
		}
	}
	// Other goroutines (the sessions' loops) may allocate meanwhile; a
	// flush that allocates does so every time.
	if per := float64(allocs) / flushes; per >= 0.5 {
		t.Fatalf("a sink flush allocates %.2f times", per)
	}
}
