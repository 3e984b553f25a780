package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/siteid"
)

// Record layer limits.
const (
	// recordKeyLen: records use AES-128-GCM, as the links' TLS does; the
	// data path pays for AES twice per site, and 128-bit keys cost 10
	// rounds instead of 14.
	recordKeyLen = 16
	// MaxRecord is the largest plaintext of one record: a full record
	// with its header is one link DATA frame (link.MaxData, 64 KiB), so
	// the ingress seals it in the buffer the link sends and the egress
	// opens it in the buffer the link received, and a bulk transfer pays
	// the per-record cost once per frame. The 2-byte length prefix holds
	// it too.
	MaxRecord = maxRecordLen - recordHdr - tagLen
	maxSealed = MaxRecord + tagLen
	recordHdr = 2
	// maxRecordLen: a record's bytes on the wire, at most.
	maxRecordLen = 64 << 10
)

// ratchetEvery is how many records a direction's key seals before it is
// replaced by a key derived from it: 2^22 full records, 256 GiB, as TLS
// 1.3's bound for AES-GCM (2^24.5 records of 16 KiB) allows. A variable
// so tests can shorten it.
var ratchetEvery uint64 = 1 << 22

// Errors of the record layer. A Conn that fails with one of them has reset
// its stream with forward.ResetSeal.
var (
	// ErrRecord: a record failed authentication: altered, replayed,
	// reordered or from another stream.
	ErrRecord = errors.New("seal: record failed authentication")
	// ErrTruncated: the stream ended without the sealed end-of-stream
	// record, so data may have been cut off.
	ErrTruncated = errors.New("seal: stream cut short")
)

// Stream is what a Conn runs over: a link stream, or in tests any
// connection that can half-close and reset.
type Stream interface {
	net.Conn
	CloseWrite() error
	Reset(code uint16) error
}

// half is one direction's AEAD state: the key in use and the implicit
// counter of the next record.
type half struct {
	aead  cipher.AEAD
	key   [recordKeyLen]byte
	n     uint64
	nonce [12]byte
}

func newHalf(key [recordKeyLen]byte) half {
	h := half{key: key}
	h.aead = newAEAD(key)
	return h
}

func newAEAD(key [recordKeyLen]byte) cipher.AEAD {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 16-byte key is always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

const ratchetLabel = "weft seal v1 ratchet"

// next returns the nonce of the next record, ratcheting the key first when
// it has sealed ratchetEvery records.
func (h *half) next() []byte {
	if h.n > 0 && h.n%ratchetEvery == 0 {
		k, err := hkdf.Key(sha256.New, h.key[:], nil, ratchetLabel, recordKeyLen)
		if err != nil {
			panic(err)
		}
		copy(h.key[:], k)
		clear(k)
		h.aead = newAEAD(h.key)
	}
	binary.BigEndian.PutUint64(h.nonce[4:], h.n)
	h.n++
	return h.nonce[:]
}

// Buffers come in two sizes: a stream starts with a small one and moves
// to a large one once it carries bulk, so that a short connection does not
// cost (and the garbage collector does not clear) 64 KiB per direction.
const smallBuf = 4 << 10

var (
	smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largeBufs = sync.Pool{New: func() any { b := make([]byte, maxRecordLen); return &b }}
)

func getBuf(large bool) *[]byte {
	if large {
		return largeBufs.Get().(*[]byte)
	}
	return smallBufs.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if len(*b) == smallBuf {
		smallBufs.Put(b)
	} else {
		largeBufs.Put(b)
	}
}

// grow returns a large buffer holding b's first n bytes, and releases b.
func grow(b *[]byte, n int) *[]byte {
	l := getBuf(true)
	copy(*l, (*b)[:n])
	putBuf(b)
	return l
}

// Conn is one sealed stream: what it writes goes out as records sealed
// with its write key, what it reads is opened with its read key. Reads and
// writes may run concurrently, one of each at a time. A record that fails
// to open resets the stream (forward.ResetSeal) and fails the read.
type Conn struct {
	Stream
	peer     siteid.ID
	onBroken func(reason string)

	wmu    sync.Mutex // guards the write half
	w      half
	wbuf   *[]byte       // nil until the first write and after the last
	sr     sealingReader // ReadFrom's, in the Conn so as not to allocate one
	werr   error
	answer []byte // egress: the handshake answer, written on Confirm

	rmu sync.Mutex // guards the read half
	r   half
	bs  bufferStream // the Stream, if it hands over its buffers
	// rbuf holds received bytes until their record is whole: every byte
	// over a plain stream, over a buffer stream only a record split
	// between two of its buffers.
	rbuf *[]byte
	roff int // start of unread bytes in rbuf
	rend int // end of read bytes in rbuf
	// Over a buffer stream: cur is the buffer being opened, curData its
	// bytes not yet opened, more whether the stream has more queued;
	// held are done buffers that c.plain's records may be in, given back
	// once c.plain is returned.
	cur     *[]byte
	curData []byte
	more    bool
	held    []*[]byte
	heldArr [maxBatch]*[]byte
	// plain is opened data not yet returned, in rbuf or in the buffers
	// of a buffer stream: one slice per record, the first one partly
	// returned.
	plain     [][]byte
	plainBase [][]byte // c.plain's array, reused for every batch
	// plainArr is plainBase's first array, enough for a small buffer's
	// records: a short stream allocates none.
	plainArr [4][]byte
	// out is what WriteTo writes: a field, so that handing it to
	// net.Buffers.WriteTo does not move it to the heap at every batch.
	out  net.Buffers
	fin  bool // the end-of-stream record is opened, after plain
	rerr error
}

func newConn(st Stream, peer siteid.ID, wkey, rkey [recordKeyLen]byte, onBroken func(string)) *Conn {
	c := &Conn{Stream: st, peer: peer, w: newHalf(wkey), r: newHalf(rkey), onBroken: onBroken}
	c.bs, _ = st.(bufferStream)
	c.plainBase = c.plainArr[:0]
	c.held = c.heldArr[:0]
	return c
}

// Peer is the site at the other end, as the handshake authenticated it:
// for a stream served here, the ingress site that opened it.
func (c *Conn) Peer() siteid.ID { return c.peer }

// Write seals p into records of at most MaxRecord bytes and sends them.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	total := 0
	for len(p) > 0 {
		buf, err := c.wbufLocked(len(p))
		if err != nil {
			return total, err
		}
		n := copy(buf[recordHdr:min(len(buf)-tagLen, recordHdr+MaxRecord)], p)
		if err := c.sendLocked(buf, n); err != nil {
			return total, err
		}
		total += n
		p = p[n:]
	}
	return total, nil
}

// ReadFrom seals what it reads from r. Over a stream that has its own
// ReadFrom (a link stream, which queues buffers without waiting for its
// writer), it hands that a reader of sealed records, so reading r, sealing
// and writing the link overlap; otherwise each read becomes one record.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if rf, ok := c.Stream.(io.ReaderFrom); ok {
		c.sr = sealingReader{c: c, src: r}
		_, err := rf.ReadFrom(&c.sr)
		n := c.sr.n
		c.sr = sealingReader{}
		if err != nil {
			c.failWriteLocked(err)
		}
		return n, err
	}
	var total int64
	for {
		buf, err := c.wbufLocked(MaxRecord)
		if err != nil {
			return total, err
		}
		n, rerr := r.Read(buf[recordHdr : recordHdr+MaxRecord])
		if n > 0 {
			if err := c.sendLocked(buf, n); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if errors.Is(rerr, io.EOF) {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// sealingReader reads plaintext from src and returns it as sealed records
// of c's write half: what a link stream's ReadFrom queues.
type sealingReader struct {
	c   *Conn
	src io.Reader
	n   int64 // plaintext bytes read
}

// Read makes one record of what one read of src returns, read and sealed
// in p itself: the link sends p as one DATA frame, and the egress opens
// the record in the buffer that frame arrives in.
func (s *sealingReader) Read(p []byte) (int, error) {
	room := min(len(p)-recordHdr-tagLen, MaxRecord)
	if room <= 0 {
		return 0, io.ErrShortBuffer
	}
	m, err := s.src.Read(p[recordHdr : recordHdr+room])
	s.n += int64(m)
	if m == 0 {
		return 0, err
	}
	return len(s.c.sealLocked(p, m)), err
}

// wbufLocked returns the write buffer, large enough for a record of want
// bytes of plaintext (at most MaxRecord).
func (c *Conn) wbufLocked(want int) ([]byte, error) {
	if c.werr != nil {
		return nil, c.werr
	}
	large := recordHdr+min(want, MaxRecord)+tagLen > smallBuf
	switch {
	case c.wbuf == nil:
		c.wbuf = getBuf(large)
	case large && len(*c.wbuf) == smallBuf:
		c.wbuf = grow(c.wbuf, 0)
	}
	return *c.wbuf, nil
}

// sealLocked seals the n plaintext bytes after buf's header in place and
// returns the record.
func (c *Conn) sealLocked(buf []byte, n int) []byte {
	binary.BigEndian.PutUint16(buf, uint16(n+tagLen))
	c.w.aead.Seal(buf[recordHdr:recordHdr], c.w.next(), buf[recordHdr:recordHdr+n], buf[:recordHdr])
	return buf[:recordHdr+n+tagLen]
}

// sendLocked seals the n plaintext bytes after buf's header in place and
// writes the record.
func (c *Conn) sendLocked(buf []byte, n int) error {
	if _, err := c.Stream.Write(c.sealLocked(buf, n)); err != nil {
		c.failWriteLocked(err)
		return err
	}
	return nil
}

func (c *Conn) failWriteLocked(err error) {
	c.werr = err
	if c.wbuf != nil {
		putBuf(c.wbuf)
		c.wbuf = nil
	}
}

// writeCloser is a stream that sends its last bytes and its half-close
// together (link.Stream): the end-of-stream record and the FIN then cross
// the link in one batch.
type writeCloser interface {
	WriteClose(p []byte) (int, error)
}

// CloseWrite sends the sealed end-of-stream record, then half-closes the
// stream: the peer reads io.EOF, and knows nothing was cut off.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf, err := c.wbufLocked(0)
	if err != nil {
		return err
	}
	wc, ok := c.Stream.(writeCloser)
	if !ok {
		err = c.sendLocked(buf, 0)
		c.failWriteLocked(net.ErrClosed)
		if err != nil {
			return err
		}
		return c.Stream.CloseWrite()
	}
	rec := c.sealLocked(buf, 0)
	_, err = wc.WriteClose(rec)
	c.failWriteLocked(net.ErrClosed)
	return err
}

// Read returns opened data from the next records.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.fillLocked(); err != nil {
		return 0, err
	}
	n := copy(p, c.plain[0])
	c.consumeLocked(n)
	return n, nil
}

// WriteTo writes opened records to w as they arrive, with no copy: every
// record that arrived together in one write (writev on a TCP connection).
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	var total int64
	for {
		if err := c.fillLocked(); err != nil {
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
		// WriteTo consumes c.out, which shares c.plain's array: what it
		// leaves is what was not written.
		c.out = c.plain
		n, err := c.out.WriteTo(w)
		total += n
		c.plain, c.out = c.out, nil
		c.consumeLocked(0)
		if err != nil {
			return total, err
		}
	}
}

// consumeLocked drops n returned bytes from the front of c.plain.
func (c *Conn) consumeLocked(n int) {
	for n > 0 {
		k := min(n, len(c.plain[0]))
		c.plain[0] = c.plain[0][k:]
		n -= k
		if len(c.plain[0]) == 0 {
			c.plain = c.plain[1:]
		}
	}
	if len(c.plain) == 0 {
		c.plain = c.plain[:0]
		if c.fin {
			c.endReadLocked(io.EOF)
		}
	}
}

// fillLocked makes c.plain non-empty, or returns why it cannot: io.EOF
// after the end-of-stream record, the error that failed the stream, or a
// passed deadline, which is not the stream's end: what was read is kept,
// so a later read goes on (net/http relies on this when it hijacks a
// connection).
func (c *Conn) fillLocked() error {
	for len(c.plain) == 0 {
		if c.rerr != nil {
			return c.rerr
		}
		if err := c.nextLocked(); err != nil {
			return err
		}
	}
	return nil
}

// bufferStream is a stream that hands over the buffers it received
// whole (link.Stream): records are opened where they arrived.
type bufferStream interface {
	ReadBuffer() (b *[]byte, data []byte, more bool, err error)
	ReleaseBuffer(b *[]byte)
}

// maxBatch is how many of a buffer stream's buffers one nextLocked opens
// at most when they are queued already: WriteTo writes them in one writev.
const maxBatch = 4

// nextLocked opens at least one record into c.plain, reading as needed;
// or it sets c.rerr, or returns a passed deadline.
func (c *Conn) nextLocked() error {
	c.releaseLocked()
	c.plain = c.plainBase[:0]
	defer func() { c.plainBase = c.plain[:0:cap(c.plain)] }()
	for {
		if c.rend > c.roff {
			n, ok := c.openLocked((*c.rbuf)[c.roff:c.rend])
			if !ok {
				return nil
			}
			c.roff += n
		}
		if c.roff == c.rend && len(c.curData) > 0 {
			n, ok := c.openLocked(c.curData)
			if !ok {
				return nil
			}
			c.curData = c.curData[n:]
		}
		// Open more only from buffers queued already, and not into rbuf
		// while c.plain may be in it.
		if c.fin || len(c.plain) > 0 && (!c.more || len(c.curData) > 0 || len(c.held) == maxBatch) {
			if len(c.plain) == 0 { // only the end-of-stream record
				c.endReadLocked(io.EOF)
			}
			return nil
		}
		var err error
		if c.bs != nil {
			err = c.takeLocked()
		} else {
			err = c.readLocked()
		}
		switch {
		case err == nil:
		case len(c.plain) > 0:
			return nil // the error comes back at the next read
		case errors.Is(err, io.EOF):
			c.broken(ErrTruncated, "truncated")
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return err
		default:
			c.endReadLocked(err)
			return nil
		}
	}
}

// openLocked opens the whole records at the start of b in place into
// c.plain, up to the end-of-stream record, and returns the bytes they
// took; false if one failed (the stream is then broken).
func (c *Conn) openLocked(b []byte) (int, bool) {
	off := 0
	for !c.fin && len(b)-off >= recordHdr {
		n := int(binary.BigEndian.Uint16(b[off:]))
		if n < tagLen || n > maxSealed {
			c.broken(fmt.Errorf("%w: record of %d bytes", ErrRecord, n), "record-size")
			return 0, false
		}
		if len(b)-off < recordHdr+n {
			break
		}
		hdr := b[off : off+recordHdr]
		sealed := b[off+recordHdr : off+recordHdr+n]
		off += recordHdr + n
		plain, err := c.r.aead.Open(sealed[:0], c.r.next(), sealed, hdr)
		switch {
		case err != nil:
			c.broken(ErrRecord, "record")
			return 0, false
		case len(plain) == 0:
			c.fin = true
		default:
			c.plain = append(c.plain, plain)
		}
	}
	return off, true
}

// readLocked reads more of a plain stream into rbuf; c.plain is empty.
func (c *Conn) readLocked() error {
	c.roomLocked(recordHdr + maxSealed)
	buf := *c.rbuf
	if c.rend == len(buf) {
		// A small buffer is full: a large record, or bulk.
		c.rbuf = grow(c.rbuf, c.rend)
		buf = *c.rbuf
	}
	m, err := c.Stream.Read(buf[c.rend:])
	c.rend += m
	if m > 0 {
		return nil
	}
	return err
}

// takeLocked goes on over a buffer stream: the bytes left in the current
// buffer begin a record that ends in a later one, and go to rbuf up to
// that record's end, so what follows it opens in place again; or, with
// none left, the next buffer becomes current. c.plain is empty if bytes
// are left.
func (c *Conn) takeLocked() error {
	if len(c.curData) == 0 {
		switch {
		case c.cur == nil:
		case len(c.plain) == 0: // nothing opened is in it
			c.bs.ReleaseBuffer(c.cur)
		default:
			c.held = append(c.held, c.cur)
		}
		c.cur = nil
		b, data, more, err := c.bs.ReadBuffer()
		if err != nil {
			return err
		}
		c.cur, c.curData, c.more = b, data, more
		return nil
	}
	avail := c.rend - c.roff
	need := recordHdr - avail
	if avail >= recordHdr { // a length openLocked checked
		need = recordHdr + int(binary.BigEndian.Uint16((*c.rbuf)[c.roff:])) - avail
	}
	k := min(need, len(c.curData))
	c.roomLocked(avail + k)
	if c.rend+k > len(*c.rbuf) {
		c.rbuf = grow(c.rbuf, c.rend)
	}
	c.rend += copy((*c.rbuf)[c.rend:], c.curData[:k])
	c.curData = c.curData[k:]
	return nil
}

// roomLocked makes rbuf, moving its unread bytes to the front when fewer
// than want bytes would fit after them; c.plain is not in it.
func (c *Conn) roomLocked(want int) {
	if c.rbuf == nil {
		c.rbuf = getBuf(false)
		c.roff, c.rend = 0, 0
	}
	if c.roff > 0 && len(*c.rbuf)-c.roff < want {
		c.rend = copy(*c.rbuf, (*c.rbuf)[c.roff:c.rend])
		c.roff = 0
	}
}

// releaseLocked gives back the buffers c.plain was in, now returned.
func (c *Conn) releaseLocked() {
	for i, b := range c.held {
		c.bs.ReleaseBuffer(b)
		c.held[i] = nil
	}
	c.held = c.held[:0]
	if c.cur != nil && len(c.curData) == 0 {
		c.bs.ReleaseBuffer(c.cur)
		c.cur = nil
	}
}

// broken resets the stream for a record that failed: the peer and the
// local reader both see why, and the link is untouched.
func (c *Conn) broken(err error, reason string) {
	c.Stream.Reset(forward.ResetSeal)
	if c.onBroken != nil {
		c.onBroken(reason)
	}
	c.endReadLocked(err)
}

func (c *Conn) endReadLocked(err error) {
	c.rerr = err
	c.plain = c.plain[:0]
	if c.rbuf != nil {
		putBuf(c.rbuf)
		c.rbuf = nil
	}
	c.curData = nil
	c.releaseLocked()
}
