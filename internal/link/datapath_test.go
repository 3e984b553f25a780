package link

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// recordReader hands out its data at most record bytes per Read, as a
// tls.Conn does, and remembers where each Read wrote.
type recordReader struct {
	data   []byte
	record int
	dsts   []*byte
}

func (r *recordReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	r.dsts = append(r.dsts, unsafe.SliceData(p))
	n := copy(p[:min(len(p), r.record)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// A DATA payload is taken from bufio as far as it holds it, then read
// from the connection straight into the payload's buffer, in order.
func TestReadDataSkipsBufio(t *testing.T) {
	data := make([]byte, 3*16<<10+100)
	rand.NewChaCha8([32]byte{1}).Read(data)
	raw := &recordReader{data: data, record: 16 << 10}
	br := bufio.NewReaderSize(raw, 64<<10)
	if _, err := br.Peek(1); err != nil { // bufio now holds the first record
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if err := readData(br, raw, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("payload differs from what was sent")
	}
	// The fill, then three reads into got itself: 16 KiB, 16 KiB, 100 bytes.
	if len(raw.dsts) != 4 {
		t.Fatalf("%d reads, want 4", len(raw.dsts))
	}
	for i, want := range []int{16 << 10, 32 << 10, 48 << 10} {
		if raw.dsts[i+1] != &got[want] {
			t.Errorf("read %d went elsewhere than the payload at offset %d (through bufio?)", i+1, want)
		}
	}
	// A short rest still goes through bufio: no Read smaller than a record.
	raw = &recordReader{data: data[:18<<10], record: 16 << 10}
	br = bufio.NewReaderSize(raw, 64<<10)
	br.Peek(1)
	if err := readData(br, raw, got[:18<<10]); err != nil || !bytes.Equal(got[:18<<10], data[:18<<10]) {
		t.Fatalf("short rest: %v", err)
	}
	if raw.dsts[1] == &got[16<<10] {
		t.Error("a rest under directRead was read past bufio")
	}
	// The connection ends inside the payload.
	raw = &recordReader{data: data[:30<<10], record: 16 << 10}
	if err := readData(bufio.NewReader(raw), raw, got); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated payload: %v, want io.ErrUnexpectedEOF", err)
	}
}

// fullReader fills every Read, counting the sizes asked for, until n bytes.
type fullReader struct {
	n     int
	short int // the Read with this index returns 1 KiB only
	sizes []int
	rng   *rand.ChaCha8
}

func (r *fullReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	r.sizes = append(r.sizes, len(p))
	k := min(len(p), r.n)
	if len(r.sizes)-1 == r.short {
		k = min(k, 1<<10)
	}
	r.rng.Read(p[:k])
	r.n -= k
	return k, nil
}

// ReadFrom grows its reads to maxRead while they fill, goes back to
// maxPayload after a short one, and the peer gets every byte in order:
// also with a window smaller than one read, where a read's frames go out
// as credit comes (frames that do not own the buffer, then the one that
// does).
func TestReadFromGrowsReads(t *testing.T) {
	for _, window := range []uint32{0, minWindow} {
		c, s := sessions(t, transports[1], Config{}, Config{StreamWindow: window})
		a, b := openPair(t, c, s, nil)
		const size = 6 << 20
		src := &fullReader{n: size, short: 3, rng: rand.NewChaCha8([32]byte{2})}
		errc := make(chan error, 1)
		go func() {
			n, err := a.ReadFrom(src)
			if err == nil && n != size {
				err = io.ErrShortWrite
			}
			a.CloseWrite()
			errc <- err
		}()
		want, _, _ := recvHash(io.LimitReader(rand.NewChaCha8([32]byte{2}), size))
		got, n, err := recvHash(b)
		if err != nil || n != size || got != want {
			t.Fatalf("window %d: %d bytes, err %v, checksum ok %v", window, n, err, got == want)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		wantSizes := []int{maxPayload, maxRead, maxRead, maxRead, maxPayload, maxRead}
		if !slices.Equal(src.sizes[:len(wantSizes)], wantSizes) {
			t.Errorf("window %d: read sizes %v, want %v then %d", window, src.sizes[:len(wantSizes)], wantSizes, maxRead)
		}
	}
}

// WriteTo hands every frame already queued to one write.
func TestWriteToGathersWhatIsQueued(t *testing.T) {
	c, s := sessions(t, transports[1], Config{}, Config{})
	a, b := openPair(t, c, s, nil)
	payload := make([]byte, 3*maxPayload)
	rand.NewChaCha8([32]byte{3}).Read(payload)
	if _, err := a.Write(payload); err != nil {
		t.Fatal(err)
	}
	a.CloseWrite()
	eventually(t, 10*time.Second, "three frames and the FIN queued", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.rq.n == len(payload) && b.finRecv
	})
	queuedAtFirstWrite := -1
	w := writesRecorder{first: func() {
		b.mu.Lock()
		queuedAtFirstWrite = b.rq.n
		b.mu.Unlock()
	}}
	if n, err := b.WriteTo(&w); err != nil || n != int64(len(payload)) {
		t.Fatalf("WriteTo: %d bytes, %v", n, err)
	}
	if !bytes.Equal(w.buf.Bytes(), payload) {
		t.Fatal("written bytes differ from what was sent")
	}
	// net.Buffers writes a buffer a call to a writer that cannot writev
	// (a TCP connection gets one writev); what shows the gathering is that
	// all three frames were taken before the first write.
	if queuedAtFirstWrite != 0 {
		t.Fatalf("%d bytes still queued at the first write: frames not gathered", queuedAtFirstWrite)
	}
}

type writesRecorder struct {
	buf   bytes.Buffer
	first func()
}

func (w *writesRecorder) Write(p []byte) (int, error) {
	if w.first != nil {
		w.first()
		w.first = nil
	}
	return w.buf.Write(p)
}

// A message's way through the link, Write at one end to Read at the other,
// allocates nothing in the link: under request/response traffic anything
// it allocated would be made once per message, and the garbage collector
// would run in step with the message rate (bench/README.md, "p99 of 1 KiB
// request/response"). Over plain TCP, so that only the link is counted.
func TestMessageDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers and frames")
	}
	c, s := sessions(t, transports[1], Config{}, Config{})
	a, b := openPair(t, c, s, nil)
	msg := bytes.Repeat([]byte("weft"), 256)
	got := make([]byte, len(msg))
	// Other goroutines (heartbeats) may allocate meanwhile; an allocation
	// on the message's path is made every time.
	if n := testing.AllocsPerRun(500, func() {
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, got); err != nil {
			t.Fatal(err)
		}
	}); n >= 0.5 {
		t.Fatalf("a 1 KiB message through the link allocates %.2f times", n)
	}
}
