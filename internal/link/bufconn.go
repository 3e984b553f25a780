package link

import (
	"net"
	"sync"
)

// connBufSize is the most a BufferedConn reads or writes in one system
// call: the kernel's largest loopback segment, so that a bulk stream costs
// one call per 64 KiB rather than one per TLS record (16 KiB).
const connBufSize = 256 << 10

// batchSlack is room beyond connBufSize in a batch, for the TLS records'
// and the frames' headers: a ReadFrom's 256 KiB read becomes four 64 KiB
// frames, 256 KiB and some 500 bytes of records, which should leave in one
// write, not two.
const batchSlack = 4 << 10

// BufferedConn is the transport under a link's TLS: it reads the socket in
// large steps, and while the session's writer drains a batch of frames it
// gathers the TLS records they become into one write. crypto/tls writes
// each record (at most 16 KiB) with a call of its own; on loopback and in
// VMs a call costs more than copying the record (bench/README.md).
//
// A Session whose connection is a *tls.Conn over a BufferedConn (or the
// BufferedConn itself) batches on it; anything else written meanwhile (a
// TLS alert, a key update) waits at most until the batch ends. Outside a
// batch writes go straight through.
type BufferedConn struct {
	net.Conn

	rbuf []byte // rbuf[roff:rend] is read and not yet returned
	roff int
	rend int
	rerr error
	// beforeRead, set before the first Read, runs on the reader's
	// goroutine each time Read is about to read the socket: the session's
	// read loop hands what it gathered to its sinks there (sink.go).
	beforeRead func()
	wmu        sync.Mutex // guards the fields below
	batch      bool
	wbuf       []byte
	werr       error
}

// NewBufferedConn wraps c, typically a TCP connection about to carry TLS.
func NewBufferedConn(c net.Conn) *BufferedConn { return &BufferedConn{Conn: c} }

// NetConn is the wrapped connection.
func (c *BufferedConn) NetConn() net.Conn { return c.Conn }

// Read returns buffered bytes, reading the socket in large steps. A read at
// least as large as the buffer bypasses it. One reader at a time (a
// tls.Conn reads under its own lock).
func (c *BufferedConn) Read(p []byte) (int, error) {
	if c.roff == c.rend {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if c.beforeRead != nil {
			c.beforeRead()
		}
		if len(p) >= connBufSize {
			return c.Conn.Read(p)
		}
		if c.rbuf == nil {
			c.rbuf = make([]byte, connBufSize)
		}
		n, err := c.Conn.Read(c.rbuf)
		c.roff, c.rend = 0, n
		if n == 0 {
			return 0, err
		}
		// Kept for the read that finds the buffer empty, so that no byte
		// read with it is lost; a deadline is not the stream's end.
		if !isTimeout(err) {
			c.rerr = err
		}
	}
	n := copy(p, c.rbuf[c.roff:c.rend])
	c.roff += n
	return n, nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// Write sends p, or during a batch keeps it for the batch's end.
func (c *BufferedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.batch {
		return c.Conn.Write(p)
	}
	if c.werr != nil {
		return 0, c.werr
	}
	if len(c.wbuf)+len(p) > connBufSize+batchSlack || len(p) >= connBufSize {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) >= connBufSize {
		n, err := c.Conn.Write(p)
		c.werr = err
		return n, err
	}
	if c.wbuf == nil {
		c.wbuf = make([]byte, 0, connBufSize+batchSlack)
	}
	c.wbuf = append(c.wbuf, p...)
	return len(p), nil
}

// beginBatch makes writes wait for endBatch.
func (c *BufferedConn) beginBatch() {
	c.wmu.Lock()
	c.batch = true
	c.wmu.Unlock()
}

// endBatch writes what the batch gathered and lets writes through again.
func (c *BufferedConn) endBatch() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.batch = false
	return c.flushLocked()
}

func (c *BufferedConn) flushLocked() error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.wbuf) > 0 {
		_, c.werr = c.Conn.Write(c.wbuf)
		c.wbuf = c.wbuf[:0]
	}
	return c.werr
}

// batcher finds the BufferedConn under conn, if any.
func batcher(conn net.Conn) *BufferedConn {
	bc, _ := under[*BufferedConn](conn)
	return bc
}

// under finds the first connection of type T in the chain from conn down
// through NetConn (TLS over BufferedConn over TCP, as sites make links).
func under[T any](conn net.Conn) (T, bool) {
	for conn != nil {
		if t, ok := conn.(T); ok {
			return t, true
		}
		nc, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = nc.NetConn()
	}
	var zero T
	return zero, false
}
