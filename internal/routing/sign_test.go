package routing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"weft.dev/weft/internal/opkey"
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

// testNow is inside the validity of opSigner's certificate.
var testNow = time.Unix(1_800_000_000, 0).Add(time.Minute)

// opSigner is the operational key with seed 2 of the identity key with
// seed 1, serial 1, valid for an hour from 1800000000.
func opSigner() *opkey.Signer {
	return opkey.Certify(testKey(1), testKey(2), 1, time.Unix(1_800_000_000, 0), time.Hour)
}

// The signed bytes are a wire contract between sites: known answers keep
// the encoding and the label from changing by accident. The expected bytes
// were computed independently (Python's cryptography package, from
// spec.md): one record signed by the identity key itself, one signed by an
// operational key with a seal key, the certificate and an extension of a
// type this version does not know (9, "hi").
func TestRecordSignKnownAnswer(t *testing.T) {
	key := testKey(1)
	r := Record{Name: "a", Seq: 7, Links: []Link{{Peer: id(2), Cost: 3}}}
	r.Site = siteid.FromKey(key.Public().(ed25519.PublicKey))
	r.Sign(key)
	const plain = "03d62c4c5b33adb49efffa9ff40272d1bccecc1507dc1ddd7295951c290888f095adb9044d1b73d696e6df065d683bd4fc070161010000000000000000000000000000000203000000001d9fccfdc84e40030f4f6ab0da1a07c9228532b798282630c347b7ab672c77dc2214d058531fa11a03004c406e511d7f204f3381a67df11b50815f656cc0930d"
	checkKnown(t, &r, plain)

	r.SealKey = [SealKeyLen]byte{}
	for i := range r.SealKey {
		r.SealKey[i] = 0xaa
	}
	r.Extensions = []Extension{{Type: 9, Value: []byte("hi")}}
	r.SignOp(opSigner())
	const op = "03d62c4c5b33adb49efffa9ff40272d1bc6b79c57e6a095239282c04818e96112f3f03a4001ba97a564c23852a3f1ea5fc070161010000000000000000000000000000000203000000030120aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa038c0101cecc1507dc1ddd7295951c290888f095adb9044d1b73d696e6df065d683bd4fc6b79c57e6a095239282c04818e96112f3f03a4001ba97a564c23852a3f1ea5fc0180c8ceb40da080cfb40d239fb27599d0fb9f791f0598df846fdeb3c8d65c313669a0342acc2f46f2efa0f19933a07f600fc895c1d23025a93ebbfbbe01ae1ddcde2e1388ba7d1438ab0b09026869f77654dc9b5eb619244d7e8a9594780581fc7cca01ee4ec91f30e84af32bfd002f9096f2050f50e8b47397b2e9567f6452dd3ba523ed63ecb40a0a15b44d6b02"
	checkKnown(t, &r, op)
}

// checkKnown checks r's encoding against want (hex) and that the decoded
// record verifies.
func checkKnown(t *testing.T, r *Record, want string) {
	t.Helper()
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("encoding changed:\n got %s\nwant %s", got, want)
	}
	var back Record
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(testNow); err != nil {
		t.Fatal(err)
	}
}

func TestRecordVerify(t *testing.T) {
	key := testKey(1)
	good := signedSample(key)
	if err := good.Verify(testNow); err != nil {
		t.Fatalf("a signed record fails: %v", err)
	}
	// Through the wire and back it still verifies: the signature covers
	// the canonical encoding, not a particular byte string.
	b, _ := good.MarshalBinary()
	var back Record
	if err := back.UnmarshalBinary(b); err != nil || back.Verify(testNow) != nil {
		t.Fatalf("decoded record: %v, verify %v", err, back.Verify(testNow))
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
			if err := r.Verify(testNow); !errors.Is(err, tc.want) {
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
	if got := r.Local(); got.Seq <= 100 || got.Verify(testNow) != nil {
		t.Fatalf("after an old copy: seq %d, verify %v", got.Seq, got.Verify(testNow))
	}
	rd := r.Ready()
	for _, m := range rd.Messages {
		if err := m.Record.Verify(testNow); err != nil {
			t.Errorf("sent an unverifiable record (seq %d): %v", m.Record.Seq, err)
		}
	}
	if old.Verify(testNow) != nil {
		t.Error("first record not signed")
	}
}

func FuzzRecordVerify(f *testing.F) {
	good := signedSample(testKey(1))
	b, _ := good.MarshalBinary()
	f.Add(b)
	good.Extensions = []Extension{{Type: 9, Value: []byte("x")}}
	good.SignOp(opSigner())
	b, _ = good.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if r.UnmarshalBinary(b) != nil {
			return
		}
		err := r.Verify(testNow)
		if err == nil && len(r.Cert) == 0 && siteid.FromKey(r.Key[:]) != r.Site {
			t.Fatal("verified a record whose key is not its site's")
		}
		if err != nil && !errors.Is(err, ErrUnsigned) && !errors.Is(err, ErrKeyMismatch) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrBadCert) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

// TestRecordOperationalKey: a record signed by a certified operational key
// verifies; a certificate of another site, of another key, expired or
// altered does not, and every extension, unknown ones included, is signed.
func TestRecordOperationalKey(t *testing.T) {
	op := opSigner()
	good := sampleRecord()
	good.Site = op.Site()
	good.Extensions = []Extension{{Type: 40, Value: []byte("later")}}
	good.SignOp(op)
	if err := good.Verify(testNow); err != nil {
		t.Fatal(err)
	}
	other := opkey.Certify(testKey(3), testKey(4), 1, time.Unix(1_800_000_000, 0), time.Hour)
	otherOfSite := opkey.Certify(testKey(1), testKey(5), 2, time.Unix(1_800_000_000, 0), time.Hour)
	for _, tc := range []struct {
		name   string
		change func(r *Record)
		at     time.Time
		want   error
	}{
		{"expired", func(*Record) {}, testNow.Add(2 * time.Hour), ErrBadCert},
		{"not yet valid", func(*Record) {}, testNow.Add(-time.Hour), ErrBadCert},
		{"another site's operational key", func(r *Record) { r.SignOp(other) }, testNow, ErrBadCert},
		{"certificate of another key of the site", func(r *Record) { r.Cert = otherOfSite.CertBytes() }, testNow, ErrKeyMismatch},
		{"certificate dropped", func(r *Record) { r.Cert = nil }, testNow, ErrKeyMismatch},
		{"unknown extension altered", func(r *Record) { r.Extensions = []Extension{{Type: 40, Value: []byte("LATER")}} }, testNow, ErrBadSignature},
		{"unknown extension dropped", func(r *Record) { r.Extensions = nil }, testNow, ErrBadSignature},
		{"certificate tampered", func(r *Record) {
			c := bytes.Clone(r.Cert)
			c[len(c)-1] ^= 1
			r.Cert = c
		}, testNow, ErrBadCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			if err := r.Verify(tc.at); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRouterSetSigner: after SetSigner the router's records carry the
// operational key's certificate, with a higher seq; another site's key is
// refused.
func TestRouterSetSigner(t *testing.T) {
	r := NewSigned(testKey(1), "a", 10)
	before := r.Local()
	if err := r.SetSigner(opSigner()); err != nil {
		t.Fatal(err)
	}
	after := r.Local()
	if after.Seq <= before.Seq || len(after.Cert) == 0 || after.Verify(testNow) != nil {
		t.Fatalf("seq %d -> %d, cert %d bytes, verify %v", before.Seq, after.Seq, len(after.Cert), after.Verify(testNow))
	}
	if err := r.SetSigner(opkey.Certify(testKey(3), testKey(4), 1, time.Unix(1_800_000_000, 0), time.Hour)); err == nil {
		t.Fatal("another site's operational key taken")
	}
}
