package seal_test

import (
	"context"
	"testing"
	"time"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/seal"
	"weft.dev/weft/internal/siteid"
)

// openTo opens a sealed stream from a to c as an ingress that takes c's
// static key to be peerKey (what its copy of c's record says).
func (w *world) openTo(peerKey [seal.KeyLen]byte) (*seal.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := forward.NewHeader(forward.KindTCP, "echo", w.a.ID, []siteid.ID{w.b.ID, w.c.ID})
	return w.in.Open(ctx, h, peerKey, func(ctx context.Context, h *forward.Header) (seal.Stream, error) {
		return forward.Open(ctx, w.a, h)
	})
}

func newKey(t *testing.T) seal.Key {
	k, err := seal.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSealKeyRotation: either end rotates its static key and nothing
// established breaks: a stream opened before carries on, a session made
// before takes new streams until it rekeys, an ingress that still has the
// egress's old record handshakes with the old key, and the egress takes an
// ingress's previous key while it is advertised as such. A key two
// rotations old is no longer answered.
func TestSealKeyRotation(t *testing.T) {
	w := newWorld(t)
	prevA := map[siteid.ID][seal.KeyLen]byte{}
	w.resp = seal.NewResponder(seal.Config{Self: w.c.ID, Key: w.keyC, Now: w.clk.Now,
		Refused: func(r string) { w.refused <- r },
		PrevPeerKey: func(id siteid.ID) ([seal.KeyLen]byte, bool) {
			w.mu.Lock()
			defer w.mu.Unlock()
			k, ok := prevA[id]
			return k, ok
		}})
	long, err := w.openTo(w.keyC.Public)
	if err != nil {
		t.Fatal(err)
	}
	half := make(chan error, 1)
	go func() {
		_, err := long.Write([]byte("before "))
		half <- err
	}()
	buf := make([]byte, len("before "))
	if _, err := long.Read(buf); err != nil || string(buf) != "before " {
		t.Fatalf("long stream: %q %v", buf, err)
	}
	must(t, <-half)

	oldC := w.keyC
	w.keyC = newKey(t)
	w.resp.SetKey(w.keyC)
	// The session made with the old key still takes streams.
	c, err := w.openTo(oldC.Public)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, "same session")
	// After the rekey, an ingress with the old record handshakes with the
	// old key, one with the new record with the new one.
	w.clk.add(4 * time.Minute)
	for name, k := range map[string][seal.KeyLen]byte{"old record": oldC.Public, "new record": w.keyC.Public} {
		c, err := w.openTo(k)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		echo(t, c, name)
	}

	// The ingress rotates: its record advertises the new key, and the old
	// one as previous; it handshakes with either.
	oldA := w.keyA
	w.keyA = newKey(t)
	w.mu.Lock()
	w.advertised[w.a.ID], prevA[w.a.ID] = w.keyA.Public, oldA.Public
	w.mu.Unlock()
	w.clk.add(4 * time.Minute)
	c, err = w.openTo(w.keyC.Public)
	if err != nil {
		t.Fatalf("ingress still on its previous key: %v", err)
	}
	echo(t, c, "previous ingress key")
	w.in.SetKey(w.keyA)
	w.clk.add(4 * time.Minute)
	c, err = w.openTo(w.keyC.Public)
	if err != nil {
		t.Fatalf("ingress on its new key: %v", err)
	}
	echo(t, c, "new ingress key")

	// The stream from before every rotation still flows.
	echo(t, long, "after")

	// Two rotations on, the first key is not answered.
	w.resp.SetKey(newKey(t))
	w.clk.add(4 * time.Minute)
	if _, err := w.openTo(oldC.Public); err == nil || rejectCode(t, err) != forward.RejectSeal {
		t.Fatalf("a key two rotations old: %v", err)
	}
	w.expectRefused("handshake")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
