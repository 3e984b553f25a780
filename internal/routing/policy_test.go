package routing

import (
	"bytes"
	"errors"
	"testing"
)

// TestRecordPolicy: a record's policy extension round-trips, is covered by
// the signature, and is not encoded at all when empty.
func TestRecordPolicy(t *testing.T) {
	key := testKey(1)
	r := signedSample(key)
	plain, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.Policy = []byte{1, 0, 0, 0}
	r.Sign(key)
	enc, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The extension count stays one byte; type, length and value follow.
	if len(enc) != len(plain)+1+1+4 {
		t.Errorf("policy of 4 bytes costs %d bytes", len(enc)-len(plain))
	}
	var got Record
	if err := got.UnmarshalBinary(enc); err != nil || !bytes.Equal(got.Policy, r.Policy) || got.Verify(testNow) != nil {
		t.Fatalf("round trip: %v, policy %x, verify %v", err, got.Policy, got.Verify(testNow))
	}
	got.Policy = []byte{1, 0, 0, 1}
	if err := got.Verify(testNow); !errors.Is(err, ErrBadSignature) {
		t.Errorf("altered policy: %v", err)
	}
	body := plain[:len(plain)-64-1] // up to the extension count
	sig := make([]byte, 64)
	for name, b := range map[string][]byte{
		"policy longer than the rest": cat(body, uv(1), uv(ExtPolicy), uv(0x7f), sig),
		"empty policy":                cat(body, uv(1), uv(ExtPolicy), uv(0), sig),
		"policy over its limit":       cat(body, uv(1), uv(ExtPolicy), uv(MaxExtensionLen+1), sig),
	} {
		if err := new(Record).UnmarshalBinary(b); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: %v", name, err)
		}
	}
	r.Policy = make([]byte, MaxPolicyLen+1)
	if err := r.Validate(); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("policy over the limit: %v", err)
	}
}

// TestSetPolicy: a new policy makes a new record, the same one does not.
func TestSetPolicy(t *testing.T) {
	r := NewSigned(testKey(1), "a", 0)
	seq := r.local.Seq
	if err := r.SetPolicy([]byte{1, 0, 0, 0}); err != nil || r.local.Seq == seq || r.local.Verify(testNow) != nil {
		t.Fatalf("SetPolicy: %v, seq %d -> %d, verify %v", err, seq, r.local.Seq, r.local.Verify(testNow))
	}
	seq = r.local.Seq
	if err := r.SetPolicy([]byte{1, 0, 0, 0}); err != nil || r.local.Seq != seq {
		t.Errorf("the same policy again: %v, seq %d -> %d", err, seq, r.local.Seq)
	}
}
