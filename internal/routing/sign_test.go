package routing

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"testing"

	"weft.dev/weft/internal/siteid"
)

// testKey is a fixed identity key, so signatures are known answers.
func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func signedSample(key ed25519.PrivateKey) Record {
	r := sampleRecord()
	r.Site = siteid.FromKey(key.Public().(ed25519.PublicKey))
	r.Sign(key)
	return r
}

// The signed bytes are a wire contract between sites: a known answer keeps
// the encoding and the label from changing by accident. The expected bytes
// were computed independently (Python's cryptography package, from
// spec.md).
func TestRecordSignKnownAnswer(t *testing.T) {
	r := Record{Name: "a", Seq: 7, Links: []Link{{Peer: id(2), Cost: 3}}}
	key := testKey(1)
	r.Site = siteid.FromKey(key.Public().(ed25519.PublicKey))
	r.Sign(key)
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	const want = "02d62c4c5b33adb49efffa9ff40272d1bccecc1507dc1ddd7295951c290888f095adb9044d1b73d696e6df065d683bd4fc07016101000000000000000000000000000000020300000025c5e1a258f78384b8eff19016383f4ff0533cb607479a9185ac3e1fc2e2486d118ba959457eefee67fa1274ec910efba807a3d30956d5d4f38bfba689270503"
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("encoding changed:\n got %s\nwant %s", got, want)
	}
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestRecordVerify(t *testing.T) {
	key := testKey(1)
	good := signedSample(key)
	if err := good.Verify(); err != nil {
		t.Fatalf("a signed record fails: %v", err)
	}
	// Through the wire and back it still verifies: the signature covers
	// the canonical encoding, not a particular byte string.
	b, _ := good.MarshalBinary()
	var back Record
	if err := back.UnmarshalBinary(b); err != nil || back.Verify() != nil {
		t.Fatalf("decoded record: %v, verify %v", err, back.Verify())
	}

	other := testKey(2)
	for _, tc := range []struct {
		name   string
		change func(r *Record)
		want   error
	}{
		{"unsigned", func(r *Record) { *r = sampleRecord() }, ErrUnsigned},
		{"no signature", func(r *Record) { r.Sig = [64]byte{} }, ErrUnsigned},
		{"seq raised (replay as newer)", func(r *Record) { r.Seq++ }, ErrBadSignature},
		{"name", func(r *Record) { r.Name = "evil" }, ErrBadSignature},
		{"link cost", func(r *Record) { r.Links = append([]Link(nil), r.Links...); r.Links[0].Cost = 1 }, ErrBadSignature},
		{"link withdrawn", func(r *Record) { r.Links = r.Links[1:] }, ErrBadSignature},
		{"connector added", func(r *Record) { r.Connectors = append(r.Connectors, Connector{Address: "x"}) }, ErrBadSignature},
		{"interest changed", func(r *Record) { r.Interests = []string{"#"} }, ErrBadSignature},
		{"signature bit", func(r *Record) { r.Sig[5] ^= 1 }, ErrBadSignature},
		{"site of another key", func(r *Record) { r.Site = siteid.FromKey(other.Public().(ed25519.PublicKey)) }, ErrKeyMismatch},
		{"forged: another key signs for this site", func(r *Record) {
			site := r.Site
			r.Sign(other)
			r.Site = site
		}, ErrKeyMismatch},
		{"forged: key swapped, signature kept", func(r *Record) { copy(r.Key[:], other.Public().(ed25519.PublicKey)) }, ErrKeyMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			if err := r.Verify(); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// A signing router signs every record it originates, including the ones it
// makes to outbid an old copy of its own after a restart.
func TestSignedRouterSignsEveryRecord(t *testing.T) {
	key := testKey(3)
	r := NewSigned(key, "a", 10)
	if r.Self() != siteid.FromKey(key.Public().(ed25519.PublicKey)) {
		t.Fatal("router ID is not derived from its key")
	}
	peer := id(9)
	r.NeighborUp(peer)
	if err := r.SetLocal([]Link{{Peer: peer, Cost: 2}}, []Connector{{Address: "orders"}}, nil); err != nil {
		t.Fatal(err)
	}
	old := r.Local()
	// A copy from before a restart, with a higher number.
	restart := NewSigned(key, "a", 100)
	r.Step(peer, restart.Local())
	if got := r.Local(); got.Seq <= 100 || got.Verify() != nil {
		t.Fatalf("after an old copy: seq %d, verify %v", got.Seq, got.Verify())
	}
	rd := r.Ready()
	for _, m := range rd.Messages {
		if err := m.Record.Verify(); err != nil {
			t.Errorf("sent an unverifiable record (seq %d): %v", m.Record.Seq, err)
		}
	}
	if old.Verify() != nil {
		t.Error("first record not signed")
	}
}

func FuzzRecordVerify(f *testing.F) {
	good := signedSample(testKey(1))
	b, _ := good.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if r.UnmarshalBinary(b) != nil {
			return
		}
		err := r.Verify()
		if err == nil && siteid.FromKey(r.Key[:]) != r.Site {
			t.Fatal("verified a record whose key is not its site's")
		}
		if err != nil && !errors.Is(err, ErrUnsigned) && !errors.Is(err, ErrKeyMismatch) && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
