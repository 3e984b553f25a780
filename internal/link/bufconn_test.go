package link

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func TestBufferedConnBatchesWrites(t *testing.T) {
	a, b := tcpPair(t)
	defer b.Close()
	cc := &countingConn{Conn: a}
	bc := NewBufferedConn(cc)
	defer bc.Close()

	var want []byte
	write := func(p []byte) {
		t.Helper()
		if n, err := bc.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		want = append(want, p...)
	}
	steps := []struct {
		name   string
		batch  bool
		sizes  []int
		writes int64 // reaching the socket, after the step
	}{
		{"outside a batch each write goes through", false, []int{10, 20}, 2},
		{"a batch gathers small writes into one", true, []int{100, 16 << 10, 5, 16 << 10}, 3},
		{"a 256 KiB read's four frames, records and headers, go in one write", true, []int{64<<10 + 122, 64<<10 + 122, 64<<10 + 122, 64<<10 + 122}, 4},
		{"a batch that outgrows the buffer writes what it holds first", true, []int{connBufSize + batchSlack - 10, 100}, 6},
		{"a write as large as the buffer goes straight through", true, []int{10, connBufSize}, 8},
		{"an empty batch writes nothing", true, nil, 8},
	}
	for i, st := range steps {
		if st.batch {
			bc.beginBatch()
		}
		for j, n := range st.sizes {
			write(bytes.Repeat([]byte{byte(i*16 + j)}, n))
		}
		if st.batch {
			if err := bc.endBatch(); err != nil {
				t.Fatalf("%s: endBatch: %v", st.name, err)
			}
		}
		if got := cc.writes.Load(); got != st.writes {
			t.Fatalf("%s: %d writes reached the socket, want %d", st.name, got, st.writes)
		}
	}
	bc.Close()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		t.Fatalf("peer read %d bytes, not the %d written in order (first difference at %d: %d, want %d)", len(got), len(want), i, got[i], want[i])
	}
}

func TestBufferedConnReads(t *testing.T) {
	a, b := tcpPair(t)
	bc := NewBufferedConn(b)
	defer bc.Close()

	// A deadline that passes is not the end of the stream.
	bc.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := bc.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	bc.SetReadDeadline(time.Time{})

	want := make([]byte, 3*connBufSize)
	for i := range want {
		want[i] = byte(i * 7)
	}
	go func() {
		a.Write(want)
		a.Close()
	}()
	// Small reads come from the buffer; one as large as the buffer
	// bypasses it once the buffer is empty; every byte arrives once, in
	// order, then io.EOF.
	var got []byte
	sizes := []int{1, 100, 4 << 10, connBufSize, 17}
	for i := 0; ; i++ {
		p := make([]byte, sizes[i%len(sizes)])
		n, err := bc.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written in order", len(got), len(want))
	}
	if _, err := bc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after EOF: %v", err)
	}
}

// A session closes its connection to stop a writer stuck on a peer that
// does not read: Close must not wait for the batch's write.
func TestBufferedConnCloseStopsStuckWrite(t *testing.T) {
	a, b := tcpPair(t)
	defer b.Close() // never read
	bc := NewBufferedConn(a)
	bc.beginBatch()
	done := make(chan error, 1)
	go func() {
		p := make([]byte, 1<<20)
		for {
			if _, err := bc.Write(p); err != nil {
				done <- err
				return
			}
		}
	}()
	// Whether the writer is already stuck or not, it must end.
	bc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not stop the writer")
	}
}

func TestBatcherFindsBufferedConnUnderTLS(t *testing.T) {
	c, s := bufferedTLSPair(t)
	defer c.Close()
	defer s.Close()
	if batcher(c) == nil || batcher(s) == nil {
		t.Fatal("no BufferedConn found under the TLS connections")
	}
	p, q := tcpPair(t)
	defer p.Close()
	defer q.Close()
	if batcher(p) != nil {
		t.Fatal("a BufferedConn found under a bare TCP connection")
	}
}
