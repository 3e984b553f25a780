package seal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/siteid"
)

// bufTape is a buffer stream, as a link stream is: it hands over its input
// in buffers cut to the given sizes, and poisons every buffer given back,
// so that data read from a buffer after its release shows.
type bufTape struct {
	tape
	bufs     [][]byte
	out      map[*[]byte]bool // handed over, not given back
	released int
	fault    string // a buffer given back twice or never handed over
}

// cut splits b into buffers of sizes, taken in turn (the last one again
// and again); no sizes: b whole.
func cut(b []byte, sizes ...int) [][]byte {
	var bufs [][]byte
	for i := 0; len(b) > 0; i++ {
		n := len(b)
		if len(sizes) > 0 {
			n = min(n, sizes[min(i, len(sizes)-1)])
		}
		bufs = append(bufs, bytes.Clone(b[:n]))
		b = b[n:]
	}
	return bufs
}

func (t *bufTape) ReadBuffer() (*[]byte, []byte, bool, error) {
	if len(t.bufs) == 0 {
		return nil, nil, false, io.EOF
	}
	b := &t.bufs[0]
	t.bufs = t.bufs[1:]
	if t.out == nil {
		t.out = map[*[]byte]bool{}
	}
	t.out[b] = true
	return b, *b, len(t.bufs) > 0, nil
}

func (t *bufTape) ReleaseBuffer(b *[]byte) {
	if !t.out[b] {
		t.fault = "a buffer given back twice or never handed over"
		return
	}
	delete(t.out, b)
	t.released++
	for i := range *b {
		(*b)[i] = 0xa5
	}
}

// openBuffers reads what a Conn with testKey reads from rec cut into
// buffers of sizes, through Read or, with writeTo, WriteTo; it fails t if
// buffers are given back wrongly or not at all.
func openBuffers(t *testing.T, rec []byte, writeTo bool, sizes ...int) ([]byte, error, uint16) {
	t.Helper()
	bt := &bufTape{bufs: cut(rec, sizes...)}
	c := newConn(bt, siteid.ID{}, [recordKeyLen]byte{}, testKey, nil)
	var got []byte
	var err error
	if writeTo {
		var out bytes.Buffer
		_, err = c.WriteTo(&out)
		got = out.Bytes()
	} else {
		got, err = io.ReadAll(c)
	}
	if bt.fault != "" || len(bt.out) > 0 {
		t.Fatalf("buffers of %v: %s; %d not given back", sizes, bt.fault, len(bt.out))
	}
	return got, err, bt.reset
}

// Records are opened in the buffers a link stream hands over, whole or
// split between buffers at any point, and every buffer goes back once
// what was opened in it is returned.
func TestRecordBuffers(t *testing.T) {
	big := make([]byte, 2*MaxRecord+5)
	rand.NewChaCha8([32]byte{4}).Read(big)
	msgs := [][]byte{[]byte("hello"), big, []byte("x")}
	rec := sealRecords(t, true, msgs...)
	want := bytes.Join(msgs, nil)
	// The records' own boundaries, as the link carries what ReadFrom seals.
	var frames []int
	for off := 0; off < len(rec); {
		n := recordHdr + int(binary.BigEndian.Uint16(rec[off:]))
		frames = append(frames, n)
		off += n
	}
	splits := [][]int{
		nil, {1}, {7}, {recordHdr + 1}, {100, 65536}, {maxRecordLen - 1},
		{maxRecordLen + 1}, {frames[0] + 1, maxRecordLen, 3}, frames,
	}
	for _, sizes := range splits {
		for _, writeTo := range []bool{false, true} {
			got, err, code := openBuffers(t, rec, writeTo, sizes...)
			if err != nil || code != 0 || !bytes.Equal(got, want) {
				t.Fatalf("buffers of %v, WriteTo %v: read %d bytes, %v, reset %d; want %d bytes",
					sizes, writeTo, len(got), err, code, len(want))
			}
		}
	}
	// Each record in a buffer of its own is opened where it arrived.
	bt := &bufTape{bufs: cut(rec, frames...)}
	c := newConn(bt, siteid.ID{}, [recordKeyLen]byte{}, testKey, nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || c.rbuf != nil || !bytes.Equal(got, want) {
		t.Fatalf("aligned records: %v, copied %v", err, c.rbuf != nil)
	}
}

// A full record with its header is one link DATA frame, and ReadFrom
// over a link stream fills each frame with one record.
func TestRecordFillsLinkFrame(t *testing.T) {
	if maxRecordLen != link.MaxData {
		t.Fatalf("a full record is %d bytes, a link frame %d", maxRecordLen, link.MaxData)
	}
	data := make([]byte, 3*MaxRecord)
	ct := &chunkedTape{tape: &tape{}, size: link.MaxData}
	c := newConn(ct, siteid.ID{}, testKey, [recordKeyLen]byte{}, nil)
	if _, err := c.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if out := ct.out.Len(); out != 3*maxRecordLen {
		t.Fatalf("%d bytes of records for 3 full ones", out)
	}
}

// Records of the largest size go through; one byte more is a second
// record; a change anywhere in a large record, or a length beyond the
// largest, is refused on every read path.
func TestRecordMaxSize(t *testing.T) {
	data := make([]byte, MaxRecord+1)
	rand.NewChaCha8([32]byte{5}).Read(data)
	rec := sealRecords(t, true, data)
	if n := int(binary.BigEndian.Uint16(rec)); n != maxSealed || len(rec) != maxRecordLen+2*(recordHdr+tagLen)+1 {
		t.Fatalf("first record of %d bytes, %d in all", n, len(rec))
	}
	if got, err, _ := openRecords(rec); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	flipped := bytes.Clone(rec)
	flipped[maxRecordLen/2] ^= 0x10
	over := bytes.Clone(rec)
	binary.BigEndian.PutUint16(over, maxSealed+1)
	for _, tc := range []struct {
		name string
		rec  []byte
	}{{"bit flipped", flipped}, {"length over the limit", over}} {
		_, err, code := openRecords(tc.rec)
		if !errors.Is(err, ErrRecord) || code != forward.ResetSeal {
			t.Fatalf("%s: %v, reset %d", tc.name, err, code)
		}
		for _, sizes := range [][]int{nil, {1000}, {maxRecordLen}} {
			got, err, code := openBuffers(t, tc.rec, true, sizes...)
			if !errors.Is(err, ErrRecord) || code != forward.ResetSeal || len(got) != 0 {
				t.Fatalf("%s, buffers of %v: %d bytes, %v, reset %d", tc.name, sizes, len(got), err, code)
			}
		}
	}
}

// FuzzRecordBuffers is FuzzRecords over a buffer stream, the input cut
// into buffers at the sizes the second argument gives (a byte a buffer):
// never a panic, nothing but a prefix of what was sealed, and every
// buffer given back once.
func FuzzRecordBuffers(f *testing.F) {
	want := append([]byte("hello"), bytes.Repeat([]byte("x"), 2*MaxRecord+3)...)
	valid := sealRecords(&testing.T{}, true, want[:5], want[5:])
	f.Add(valid, []byte{})
	f.Add(valid, []byte{1, 200, 7})
	f.Add(valid[:20], []byte{3})
	f.Add([]byte{0, 16}, []byte{1})
	f.Fuzz(func(t *testing.T, b, cuts []byte) {
		sizes := make([]int, len(cuts))
		for i, c := range cuts {
			sizes[i] = int(c)*int(c) + 1 // up to 64 KiB
		}
		got, err, _ := openBuffers(t, b, len(cuts)%2 == 0, sizes...)
		if !bytes.HasPrefix(want, got) {
			t.Fatalf("forged stream of %d bytes opened to %d bytes", len(b), len(got))
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("stream cut to %d bytes read as complete", len(got))
		}
	})
}
