package routing

import (
	"bytes"
	"errors"
	"testing"
)

// TestRecordPolicy: a record's policy section round-trips, is covered by
// the signature, and is not encoded at all when empty, so a record without
// one encodes as before policies (the known answer of sign_test.go).
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
	if len(enc) != len(plain)+1+4 {
		t.Errorf("policy of 4 bytes costs %d bytes", len(enc)-len(plain))
	}
	var got Record
	if err := got.UnmarshalBinary(enc); err != nil || !bytes.Equal(got.Policy, r.Policy) || got.Verify() != nil {
		t.Fatalf("round trip: %v, policy %x, verify %v", err, got.Policy, got.Verify())
	}
	got.Policy = []byte{1, 0, 0, 1}
	if err := got.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("altered policy: %v", err)
	}
	for name, b := range map[string][]byte{
		"policy longer than the rest": append(bytes.Clone(plain[:len(plain)-64]), append([]byte{0x7f}, make([]byte, 64)...)...),
		"policy over its limit":       append(bytes.Clone(plain[:len(plain)-64]), append([]byte{0x81, 0x80, 0x04}, make([]byte, 64)...)...),
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
	if err := r.SetPolicy([]byte{1, 0, 0, 0}); err != nil || r.local.Seq == seq || r.local.Verify() != nil {
		t.Fatalf("SetPolicy: %v, seq %d -> %d, verify %v", err, seq, r.local.Seq, r.local.Verify())
	}
	seq = r.local.Seq
	if err := r.SetPolicy([]byte{1, 0, 0, 0}); err != nil || r.local.Seq != seq {
		t.Errorf("the same policy again: %v, seq %d -> %d", err, seq, r.local.Seq)
	}
}
