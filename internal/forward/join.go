package forward

import (
	"errors"
	"io"
	"net"
	"sync"

	"weft.dev/weft/internal/link"
)

// halfCloser is a connection whose write side can be closed on its own, so that a
// client's half-close travels end to end (TCP's CloseWrite, link.Stream's FIN).
type halfCloser interface {
	CloseWrite() error
}

// bufSize is large because the data path moves bulk transfers; the pool keeps it
// from costing an allocation per connection.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Join copies a to b and b to a until both directions end, passing a half-close
// from one side on to the other, then closes both. It returns the bytes copied
// each way. An error in one direction aborts both, as a broken TCP connection would.
func Join(a, b net.Conn) (aToB, bToA int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bToA = pipe(a, b)
	}()
	aToB = pipe(b, a)
	wg.Wait()
	a.Close()
	b.Close()
	return aToB, bToA
}

// pipe copies src to dst, then half-closes dst. On an error other than a clean EOF it
// closes both ends so the other direction stops too.
func pipe(dst, src net.Conn) int64 {
	n, err := copyConn(dst, src)
	if err != nil && !errors.Is(err, io.EOF) {
		dst.Close()
		src.Close()
		return n
	}
	if hc, ok := dst.(halfCloser); ok {
		if hc.CloseWrite() == nil {
			return n
		}
	}
	dst.Close()
	return n
}

// copyConn copies src to dst (and half-closes dst if both are link
// streams). TCP connections, link streams and sealed
// streams copy by themselves (WriterTo, ReaderFrom) and never touch a copy
// buffer, so the pool's is taken only for a pair that does not: otherwise
// every joined connection would pin 256 KiB per direction for its life.
func copyConn(dst io.Writer, src io.Reader) (int64, error) {
	// A transit site: the stream's last data and its FIN go on together.
	if s, ok := src.(*link.Stream); ok {
		if d, ok := dst.(*link.Stream); ok {
			return s.CopyClose(d)
		}
	}
	_, wt := src.(io.WriterTo)
	_, rf := dst.(io.ReaderFrom)
	if wt || rf {
		return io.Copy(dst, src)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(dst, src, *bp)
}
