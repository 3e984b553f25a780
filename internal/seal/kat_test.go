package seal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/siteid"
)

// Known-answer vectors: fixed keys, fixed randomness, a fixed header. A
// change to the handshake, the key schedule or the record format changes
// them; that is a new protocol version, and the vectors are updated with
// WEFT_SEAL_KAT=print.
var kat = map[string]string{
	"msg1":      "fde7ea2b184f606115bffb16ddf25b55d4c9e164d6fe807281572e210d7014227342ad21c86c87b04702f47817d2d9cd225f5aecb51b32f13f47f35205aed6207fe0a646d64a2a7f26afb29b1e2e532a80e1efe0aff390f34ab3fb47cbc1549a5df437ad0b01da2c24b9c55c",
	"msg2":      "5d49f6e044de4403d30a772c76062cecb2dde3281b3eddd5f3fb089d25a7090ac19c7ae3a595bc437d628601968d9045",
	"i2r":       "3aaf6b642b107dedabf6a0801664fed6",
	"r2i":       "d1ccc2fcecc55572499007c3bf9e39eb",
	"check":     "40700e813e79cece694fc0a1fdbbb31b",
	"record":    "cf46d9831f2b205cc248568027e44c112557f6050e2d1c6e90f9e5bfe605351e",
	"bigRecord": "52bcd466ee0c3f81de7e00f25b6bb8caf6039b20e851691246edf020c85aa04d",
	"streamKey": "67eda68807a5c13d15f1339e3f1e5f47",
}

func katKey(seed byte) Key {
	k, err := GenerateKey(rand.NewChaCha8([32]byte{seed}))
	if err != nil {
		panic(err)
	}
	return k
}

func TestKnownAnswers(t *testing.T) {
	ingress, egress := katKey(1), katKey(2)
	a, b, c := siteid.ID{15: 0xa}, siteid.ID{15: 0xb}, siteid.ID{15: 0xc}
	h := forward.NewHeader(forward.KindTCP, "orders", a, []siteid.ID{b, c})
	bind := binding(h)
	now := time.Unix(1_700_000_000, 0)
	init, msg1, err := initiate(ingress, c, egress.Public, bind, 7, 42, rand.NewChaCha8([32]byte{3}))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := respond(egress, a, bind, msg1, rand.NewChaCha8([32]byte{4}), now)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ts != 42 || resp.sess.index != 7 || resp.sess.peerKey != ingress.Public {
		t.Fatalf("egress read ts %d index %d key %x", resp.ts, resp.sess.index, resp.sess.peerKey)
	}
	sess, err := init.finish(resp.msg2, now)
	if err != nil {
		t.Fatal(err)
	}
	if sess.prk != resp.sess.prk || sess.peerKey != egress.Public {
		t.Fatal("the two ends disagree on the session")
	}
	k := sess.streamKeys(5, bind)
	if k != resp.sess.streamKeys(5, bind) {
		t.Fatal("the two ends disagree on stream keys")
	}
	tp := &tape{}
	conn := newConn(tp, c, k.i2r, k.r2i, nil)
	conn.Write([]byte("weft"))
	conn.CloseWrite()
	sum := sha256.Sum256(tp.out.Bytes())
	// Records of the largest size and one past it, R's way.
	tp = &tape{}
	conn = newConn(tp, a, k.r2i, k.i2r, nil)
	big := make([]byte, 2*MaxRecord+1)
	rand.NewChaCha8([32]byte{6}).Read(big)
	conn.Write(big)
	conn.CloseWrite()
	bigSum := sha256.Sum256(tp.out.Bytes())
	got := map[string]string{
		"msg1":      hex.EncodeToString(msg1),
		"msg2":      hex.EncodeToString(resp.msg2),
		"i2r":       hex.EncodeToString(k.i2r[:]),
		"r2i":       hex.EncodeToString(k.r2i[:]),
		"check":     hex.EncodeToString(k.check[:]),
		"record":    hex.EncodeToString(sum[:]),
		"bigRecord": hex.EncodeToString(bigSum[:]),
		"streamKey": hex.EncodeToString(func() []byte { k0 := sess.streamKeys(0, bind); return k0.i2r[:] }()),
	}
	if os.Getenv("WEFT_SEAL_KAT") == "print" {
		for _, name := range []string{"msg1", "msg2", "i2r", "r2i", "check", "record", "bigRecord", "streamKey"} {
			t.Logf("%q: %q,", name, got[name])
		}
		return
	}
	for name, want := range kat {
		if got[name] != want {
			t.Errorf("%s = %s, want %s", name, got[name], want)
		}
	}
	// Each stream and each path has its own keys.
	other := forward.NewHeader(forward.KindTCP, "orders", a, []siteid.ID{c})
	if sess.streamKeys(6, bind) == k || sess.streamKeys(5, binding(other)) == k {
		t.Fatal("stream keys do not depend on the counter and the path")
	}
	// The egress's answer does not open for another ingress's handshake.
	init2, _, _ := initiate(katKey(5), c, egress.Public, bind, 7, 42, rand.NewChaCha8([32]byte{3}))
	if _, err := init2.finish(resp.msg2, now); err == nil {
		t.Fatal("an answer to another handshake was accepted")
	}
	if _, err := init2.finish(bytes.Repeat([]byte{1}, msg2Len-1), now); err == nil {
		t.Fatal("a short answer was accepted")
	}
}

var testNow = time.Unix(1_700_000_000, 0)
