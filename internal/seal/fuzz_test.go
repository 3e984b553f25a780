package seal

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"weft.dev/weft/internal/siteid"
)

func FuzzPreamble(f *testing.F) {
	f.Add((&preamble{kind: kindResume, index: 3, counter: 9}).marshal())
	f.Add((&preamble{kind: kindInit, msg1: make([]byte, msg1Len)}).marshal())
	f.Add([]byte{kindResume})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePreamble(b)
		if err != nil {
			return
		}
		if out := p.marshal(); !bytes.Equal(out, b) {
			t.Fatalf("round trip changed bytes:\n%x\n%x", b, out)
		}
	})
}

// FuzzRecords feeds arbitrary bytes to the record reader: it must never
// panic, and what it returns must be a prefix of what was sealed with its
// key (the seed is a valid stream; a mutation that opens to anything else
// is a forgery).
func FuzzRecords(f *testing.F) {
	want := append([]byte("hello"), bytes.Repeat([]byte("x"), smallBuf+3)...)
	valid := sealRecords(&testing.T{}, true, want[:5], want[5:])
	f.Add(valid)
	f.Add(valid[:20])
	f.Add([]byte{0, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		tp := &tape{in: bytes.NewReader(b)}
		c := newConn(tp, siteid.ID{}, [recordKeyLen]byte{}, testKey, nil)
		got, err := io.ReadAll(c)
		if !bytes.HasPrefix(want, got) {
			t.Fatalf("forged stream of %d bytes opened to %q", len(b), got)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("stream cut to %d bytes read as complete", len(got))
		}
	})
}

// FuzzHandshake feeds arbitrary first messages to the egress: refused,
// never a panic.
func FuzzHandshake(f *testing.F) {
	ingress, egress := katKey(1), katKey(2)
	// Deterministic, so that every fuzzing process makes the same message.
	_, msg1, _ := initiate(ingress, siteid.ID{2}, egress.Public, []byte("bind"), 1, 1, rand.NewChaCha8([32]byte{3}))
	f.Add(msg1)
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := respond(egress, siteid.ID{1}, []byte("bind"), b, nil, testNow)
		if err == nil && !bytes.Equal(b, msg1) && resp.sess.peerKey == ingress.Public {
			t.Fatalf("altered first message accepted as the ingress's: %x\n%x", b, msg1)
		}
	})
}
