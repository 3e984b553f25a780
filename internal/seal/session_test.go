package seal_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/forward/forwardtest"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/seal"
	"weft.dev/weft/internal/siteid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable time for session ages.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// world is the line a-b-c: a is the ingress, b a transit site, c the egress
// with a sealed echo service.
type world struct {
	t       *testing.T
	clk     *clock
	a, b, c *forwardtest.Site
	keyA    seal.Key
	keyC    seal.Key
	in      *seal.Initiator
	resp    *seal.Responder
	refused chan string
	peers   chan siteid.ID // the authenticated ingress of each served stream
	// advertised is the key each site's record holds, as c sees it.
	mu         sync.Mutex
	advertised map[siteid.ID][seal.KeyLen]byte
}

func newWorld(t *testing.T) *world {
	m := forwardtest.New(t)
	w := &world{t: t, clk: &clock{now: time.Unix(1_700_000_000, 0)}, refused: make(chan string, 100), peers: make(chan siteid.ID, 100)}
	w.a, w.b, w.c = m.Site("a"), m.Site("b"), m.Site("c")
	m.Link(w.a, w.b)
	m.Link(w.b, w.c)
	var err error
	if w.keyA, err = seal.GenerateKey(nil); err != nil {
		t.Fatal(err)
	}
	if w.keyC, err = seal.GenerateKey(nil); err != nil {
		t.Fatal(err)
	}
	w.advertised = map[siteid.ID][seal.KeyLen]byte{w.a.ID: w.keyA.Public, w.c.ID: w.keyC.Public}
	w.in = seal.NewInitiator(seal.Config{Self: w.a.ID, Key: w.keyA, Now: w.clk.Now})
	w.resp = seal.NewResponder(seal.Config{Self: w.c.ID, Key: w.keyC, Now: w.clk.Now,
		Refused: func(r string) { w.refused <- r }})
	w.c.SetDeliver(w.serve)
	return w
}

func (w *world) peerKey(id siteid.ID) ([seal.KeyLen]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k, ok := w.advertised[id]
	return k, ok
}

// serve is c's sealed echo.
func (w *world) serve(st *link.Stream, h *forward.Header) {
	c, err := w.resp.Accept(st, h, w.peerKey)
	if err != nil {
		return
	}
	if c.Confirm() != nil {
		return
	}
	w.peers <- c.Peer()
	io.Copy(c, c)
	c.CloseWrite()
	c.Close()
}

// open opens a sealed stream from a to address at c through b, its header
// passed through edit (a hostile transit) first when edit is not nil.
func (w *world) open(address string, edit func(*forward.Header)) (*seal.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := forward.NewHeader(forward.KindTCP, address, w.a.ID, []siteid.ID{w.b.ID, w.c.ID})
	return w.in.Open(ctx, h, w.keyC.Public, func(ctx context.Context, h *forward.Header) (seal.Stream, error) {
		if edit != nil {
			edit(h)
		}
		return forward.Open(ctx, w.a, h)
	})
}

func echo(t *testing.T, c *seal.Conn, msg string) {
	t.Helper()
	go func() {
		c.Write([]byte(msg))
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != msg {
		t.Fatalf("echo: %d bytes, %v; want %d bytes", len(got), err, len(msg))
	}
}

func rejectCode(t *testing.T, err error) uint16 {
	t.Helper()
	var rej *link.RejectError
	if !errors.As(err, &rej) {
		t.Fatalf("open: %v, want a reject", err)
	}
	return rej.Code
}

func (w *world) expectRefused(reason string) {
	w.t.Helper()
	select {
	case r := <-w.refused:
		if r != reason {
			w.t.Fatalf("refused for %q, want %q", r, reason)
		}
	case <-time.After(10 * time.Second):
		w.t.Fatalf("nothing refused, want %q", reason)
	}
}

// replayed opens a stream, as a transit keeping a copy of its OPEN, then
// sends that copy again: the egress refuses it as a replay.
func (w *world) replayed() {
	w.t.Helper()
	var saved *forward.Header
	c, err := w.open("echo", func(h *forward.Header) { cp := *h; saved = &cp })
	if err != nil {
		w.t.Fatal(err)
	}
	echo(w.t, c, "once")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = forward.Open(ctx, w.a, saved)
	if rejectCode(w.t, err) != forward.RejectSeal {
		w.t.Fatalf("replayed open: %v", err)
	}
	w.expectRefused("replay")
}

func TestSealedStreamsShareOneSession(t *testing.T) {
	w := newWorld(t)
	msg := strings.Repeat("weft ", 100_000) // several records and windows
	for range 3 {
		c, err := w.open("echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Peer() != w.c.ID {
			t.Fatalf("ingress sees peer %s", c.Peer())
		}
		echo(t, c, msg)
		if p := <-w.peers; p != w.a.ID {
			t.Fatalf("egress authenticated ingress %s, want a", p)
		}
	}
	// Concurrent streams, the first handshakes and the others wait for it.
	w2 := newWorld(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := w2.open("echo", nil)
			if err != nil {
				t.Error(err)
				return
			}
			echo(t, c, "concurrent")
		}()
	}
	wg.Wait()
}

func TestSealRefusals(t *testing.T) {
	w := newWorld(t)
	c, err := w.open("echo", nil) // makes the session
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "x")

	// A transit rewriting the address or the path of a stream.
	_, err = w.open("echo", func(h *forward.Header) { h.Address = "admin" })
	if rejectCode(t, err) != forward.RejectSeal {
		t.Fatalf("altered address: %v", err)
	}
	w.expectRefused("check")
	// c holds no session with b, so the ingress handshakes again, which
	// fails too: b has no key of a's.
	_, err = w.open("echo", func(h *forward.Header) { h.Origin = w.b.ID })
	if code := rejectCode(t, err); code != forward.RejectSeal {
		t.Fatalf("altered origin: %v", err)
	}
	w.expectRefused("session")
	w.expectRefused("unknown-origin")

	// A transit replaying a stream's OPEN.
	w.replayed()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// No seal at all.
	_, err = forward.Open(ctx, w.a, forward.NewHeader(forward.KindTCP, "echo", w.a.ID, []siteid.ID{w.b.ID, w.c.ID}))
	if rejectCode(t, err) != forward.RejectSeal {
		t.Fatalf("unsealed open: %v", err)
	}
	w.expectRefused("preamble")
}

func TestSealHandshakeRefusals(t *testing.T) {
	t.Run("path altered in the first message", func(t *testing.T) {
		w := newWorld(t)
		_, err := w.open("echo", func(h *forward.Header) { h.Address = "admin" })
		if rejectCode(t, err) != forward.RejectSeal {
			t.Fatal(err)
		}
		w.expectRefused("handshake")
	})
	t.Run("ingress key not the one its origin advertises", func(t *testing.T) {
		w := newWorld(t)
		w.mu.Lock()
		w.advertised[w.a.ID] = w.keyC.Public
		w.mu.Unlock()
		_, err := w.open("echo", nil)
		if rejectCode(t, err) != forward.RejectSeal {
			t.Fatal(err)
		}
		w.expectRefused("wrong-key")
	})
	t.Run("origin advertises no key", func(t *testing.T) {
		w := newWorld(t)
		w.mu.Lock()
		delete(w.advertised, w.a.ID)
		w.mu.Unlock()
		_, err := w.open("echo", nil)
		if rejectCode(t, err) != forward.RejectSeal {
			t.Fatal(err)
		}
		w.expectRefused("unknown-origin")
	})
	t.Run("ingress uses a wrong key for the egress", func(t *testing.T) {
		w := newWorld(t)
		w.keyC.Public[0] ^= 1
		_, err := w.open("echo", nil)
		if rejectCode(t, err) != forward.RejectSeal {
			t.Fatal(err)
		}
		w.expectRefused("handshake")
	})
	t.Run("replayed first message", func(t *testing.T) {
		newWorld(t).replayed() // the first stream of a world handshakes
	})
}

// Sessions are replaced after RekeyAfter; a session the egress no longer
// holds (expired, or the egress restarted) costs one reject, then a new
// handshake.
func TestSealRekey(t *testing.T) {
	w := newWorld(t)
	c, err := w.open("echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "1")
	w.clk.add(4 * time.Minute) // past RejectAfter too: the old session is refused
	c, err = w.open("echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "2")
	select {
	case r := <-w.refused:
		t.Fatalf("refused %q: the ingress should have rekeyed first", r)
	default:
	}
	// The egress restarts: it holds no session.
	w.resp = seal.NewResponder(seal.Config{Self: w.c.ID, Key: w.keyC, Now: w.clk.Now, Refused: func(r string) { w.refused <- r }})
	c, err = w.open("echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "3")
	w.expectRefused("session")
}

// A transit that alters a byte of a sealed stream breaks only that stream:
// it is reset with forward.ResetSeal, and the next stream goes through.
func TestSealTamperedRecordResetsStream(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := forward.NewHeader(forward.KindTCP, "echo", w.a.ID, []siteid.ID{w.b.ID, w.c.ID})
	c, err := w.in.Open(ctx, h, w.keyC.Public, func(ctx context.Context, h *forward.Header) (seal.Stream, error) {
		st, err := forward.Open(ctx, w.a, h)
		return &flipper{Stream: st}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Write(bytes.Repeat([]byte("x"), 100))
	// The egress resets its stream; the transit closes the ingress's half
	// (forward.Join does not pass reset codes on), which the ingress reads
	// as a stream cut short.
	_, err = io.ReadAll(c)
	var rst *link.ResetError
	if !errors.Is(err, seal.ErrTruncated) && !(errors.As(err, &rst) && rst.Code == forward.ResetSeal) {
		t.Fatalf("read %v, want the stream cut short or reset with code %d", err, forward.ResetSeal)
	}
	c.Close()
	w.expectRefused("record")
	c, err = w.open("echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "after")
}

// flipper alters the last byte of each write: a transit changing
// ciphertext.
type flipper struct{ *link.Stream }

func (f *flipper) Write(p []byte) (int, error) {
	b := bytes.Clone(p)
	b[len(b)-1] ^= 0x80
	return f.Stream.Write(b)
}
