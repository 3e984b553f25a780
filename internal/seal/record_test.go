package seal

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/siteid"
)

// tape is a Stream that records what is written to it and plays back what
// it was given to read: the record layer's bytes, for a transit that
// alters them.
type tape struct {
	net.Conn // nil: only the methods below are used
	in       *bytes.Reader
	out      bytes.Buffer
	finished bool
	reset    uint16
}

func (t *tape) Read(p []byte) (int, error)  { return t.in.Read(p) }
func (t *tape) Write(p []byte) (int, error) { return t.out.Write(p) }
func (t *tape) CloseWrite() error           { t.finished = true; return nil }
func (t *tape) Reset(code uint16) error     { t.reset = code; return nil }

var testKey = [recordKeyLen]byte{1, 2, 3}

// seal returns the bytes a Conn with testKey writes for msgs, then its
// end-of-stream record when fin.
func sealRecords(t *testing.T, fin bool, msgs ...[]byte) []byte {
	t.Helper()
	tp := &tape{}
	c := newConn(tp, siteid.ID{}, testKey, [recordKeyLen]byte{}, nil)
	for _, m := range msgs {
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	if fin {
		if err := c.CloseWrite(); err != nil || !tp.finished {
			t.Fatalf("CloseWrite: %v, half-closed %v", err, tp.finished)
		}
	}
	return tp.out.Bytes()
}

// open reads what a Conn with testKey reads from b.
func openRecords(b []byte) ([]byte, error, uint16) {
	tp := &tape{in: bytes.NewReader(b)}
	var broken []string
	c := newConn(tp, siteid.ID{}, [recordKeyLen]byte{}, testKey, func(r string) { broken = append(broken, r) })
	got, err := io.ReadAll(c)
	if (tp.reset != 0) != (len(broken) > 0) {
		panic("reset and metric disagree")
	}
	return got, err, tp.reset
}

func TestRecordRoundTrip(t *testing.T) {
	big := make([]byte, 3*MaxRecord+5)
	rand.NewChaCha8([32]byte{1}).Read(big)
	rec := sealRecords(t, true, []byte("hello"), big, []byte("x"))
	want := append(append([]byte("hello"), big...), 'x')
	// hello, four records for big, x, end of stream: each 2+16 bytes over.
	if n := len(rec) - len(want); n != 7*(recordHdr+tagLen) {
		t.Fatalf("%d bytes of overhead, want 7 records' worth", n)
	}
	if bytes.Contains(rec, []byte("hello")) || bytes.Contains(rec, big[:64]) {
		t.Fatal("plaintext visible in the records")
	}
	got, err, code := openRecords(rec)
	if err != nil || code != 0 || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, %v, reset %d; want %d bytes", len(got), err, code, len(want))
	}
}

func TestRecordRatchet(t *testing.T) {
	msgs := make([][]byte, 7)
	for i := range msgs {
		msgs[i] = []byte("same")
	}
	plain := sealRecords(t, true, msgs...)
	defer func(n uint64) { ratchetEvery = n }(ratchetEvery)
	ratchetEvery = 3
	rec := sealRecords(t, true, msgs...)
	got, err, _ := openRecords(rec)
	if err != nil || string(got) != "samesamesamesamesamesamesame" {
		t.Fatalf("read %q, %v", got, err)
	}
	// Records 0-2 are under the first key, the rest under ratcheted ones.
	size := recordHdr + 4 + tagLen
	if !bytes.Equal(rec[:3*size], plain[:3*size]) || bytes.Equal(rec[3*size:4*size], plain[3*size:4*size]) {
		t.Fatal("the key did not ratchet after the third record")
	}
}

// Any change to the records is refused and resets the stream with
// forward.ResetSeal: transit sites cannot alter, replay, reorder or cut.
func TestRecordTampering(t *testing.T) {
	rec := sealRecords(t, true, []byte("first"), []byte("second"), []byte("third"))
	r1 := recordHdr + 5 + tagLen      // end of the first record
	r2 := r1 + recordHdr + 6 + tagLen // end of the second
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flip := func(i int) []byte { b := bytes.Clone(rec); b[i] ^= 1; return b }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"bit flipped in ciphertext", flip(recordHdr + 2), ErrRecord},
		{"bit flipped in tag", flip(r1 - 1), ErrRecord},
		{"length changed", flip(1), ErrRecord},
		{"record replayed", cat(rec[:r1], rec[:r1], rec[r1:]), ErrRecord},
		{"records reordered", cat(rec[r1:r2], rec[:r1], rec[r2:]), ErrRecord},
		{"record dropped", cat(rec[:r1], rec[r2:]), ErrRecord},
		{"cut before the end record", rec[:len(rec)-recordHdr-tagLen], ErrTruncated},
		{"cut inside a record", rec[:r1+3], ErrTruncated},
		{"record over the size limit", cat(rec[:r1], []byte{0xff, 0xff}), ErrRecord},
		{"record under the tag size", cat(rec[:r1], []byte{0, 3, 1, 2, 3}), ErrRecord},
		{"from another stream", sealRecordsKey(t, [recordKeyLen]byte{9}), ErrRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err, code := openRecords(tt.b)
			if !errors.Is(err, tt.want) || code != forward.ResetSeal {
				t.Fatalf("read error %v, reset %d; want %v and reset %d", err, code, tt.want, forward.ResetSeal)
			}
		})
	}
}

func sealRecordsKey(t *testing.T, key [recordKeyLen]byte) []byte {
	tp := &tape{}
	c := newConn(tp, siteid.ID{}, key, [recordKeyLen]byte{}, nil)
	c.Write([]byte("elsewhere"))
	c.CloseWrite()
	return tp.out.Bytes()
}

// ReadFrom and WriteTo, which forward.Join uses, move the same bytes as
// Write and Read, and allocate nothing per record.
func TestRecordCopyPaths(t *testing.T) {
	data := make([]byte, 10*MaxRecord+77)
	rand.NewChaCha8([32]byte{2}).Read(data)
	tp := &tape{}
	c := newConn(tp, siteid.ID{}, testKey, [recordKeyLen]byte{}, nil)
	if n, err := c.ReadFrom(bytes.NewReader(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("ReadFrom %d, %v", n, err)
	}
	c.CloseWrite()
	rc := newConn(&tape{in: bytes.NewReader(tp.out.Bytes())}, siteid.ID{}, [recordKeyLen]byte{}, testKey, nil)
	var out bytes.Buffer
	if n, err := rc.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("WriteTo %d, %v", n, err)
	}
}

func BenchmarkRecordWrite(b *testing.B) {
	c := newConn(&tape{}, siteid.ID{}, testKey, [recordKeyLen]byte{}, nil)
	p := make([]byte, MaxRecord)
	b.SetBytes(MaxRecord)
	b.ReportAllocs()
	for b.Loop() {
		c.Stream.(*tape).out.Reset()
		c.Write(p)
	}
}

func BenchmarkRecordRead(b *testing.B) {
	rec := sealRecords(&testing.T{}, false, make([]byte, 64*MaxRecord))
	p := make([]byte, MaxRecord)
	b.SetBytes(64 * MaxRecord)
	b.ReportAllocs()
	for b.Loop() {
		c := newConn(&tape{in: bytes.NewReader(rec)}, siteid.ID{}, [recordKeyLen]byte{}, testKey, nil)
		for range 64 {
			io.ReadFull(c, p)
		}
	}
}

// deadlineTape fails its first read with a passed deadline, as a link
// stream does when net/http aborts a background read before a hijack.
type deadlineTape struct {
	*tape
	failed bool
}

func (d *deadlineTape) Read(p []byte) (int, error) {
	if !d.failed {
		d.failed = true
		return 0, os.ErrDeadlineExceeded
	}
	return d.tape.Read(p)
}

func TestRecordDeadlineIsNotTheEnd(t *testing.T) {
	rec := sealRecords(t, true, []byte("after the deadline"))
	c := newConn(&deadlineTape{tape: &tape{in: bytes.NewReader(rec)}}, siteid.ID{}, [recordKeyLen]byte{}, testKey, nil)
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first read: %v, want the deadline", err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "after the deadline" {
		t.Fatalf("read %q, %v after the deadline", got, err)
	}
}

// chunkedTape has a ReadFrom that reads in buffers of size bytes, as a
// link stream's does with its own.
type chunkedTape struct {
	*tape
	size int
}

func (c *chunkedTape) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		b := make([]byte, c.size)
		n, err := r.Read(b)
		c.out.Write(b[:n])
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// ReadFrom over a stream with its own ReadFrom fills that stream's buffers
// with whole records, whatever their size.
func TestRecordSealingReader(t *testing.T) {
	data := make([]byte, 5*MaxRecord+123)
	rand.NewChaCha8([32]byte{3}).Read(data)
	for _, size := range []int{recordHdr + tagLen + 1, 100, MaxRecord, 64 << 10, 70_000} {
		ct := &chunkedTape{tape: &tape{}, size: size}
		c := newConn(ct, siteid.ID{}, testKey, [recordKeyLen]byte{}, nil)
		if n, err := c.ReadFrom(struct{ io.Reader }{bytes.NewReader(data)}); err != nil || n != int64(len(data)) {
			t.Fatalf("buffers of %d: ReadFrom %d, %v", size, n, err)
		}
		c.CloseWrite()
		got, err, _ := openRecords(ct.out.Bytes())
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("buffers of %d: read back %d bytes, %v", size, len(got), err)
		}
	}
	// A buffer too small for one record's overhead is refused, not overrun.
	ct := &chunkedTape{tape: &tape{}, size: recordHdr + tagLen}
	c := newConn(ct, siteid.ID{}, testKey, [recordKeyLen]byte{}, nil)
	if _, err := c.ReadFrom(bytes.NewReader(data)); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("ReadFrom into %d-byte buffers: %v", recordHdr+tagLen, err)
	}
}
