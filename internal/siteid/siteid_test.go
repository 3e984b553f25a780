package siteid

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	id, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if id.IsZero() {
		t.Fatal("New returned zero")
	}
	s := id.String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want 32 lowercase hex", s)
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		if back, err := Parse(in); err != nil || back != id {
			t.Fatalf("Parse(%q) = %v, %v", in, back, err)
		}
	}
	b, err := json.Marshal(struct{ ID ID }{id})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ID":"` + s + `"}`; string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	var got struct{ ID ID }
	if err := json.Unmarshal(b, &got); err != nil || got.ID != id {
		t.Fatalf("JSON round trip: %v, %v", got.ID, err)
	}
}

func TestString(t *testing.T) {
	if s := (ID{0: 0xab, 15: 0x01}).String(); s != "ab000000000000000000000000000001" {
		t.Fatalf("String = %q", s)
	}
}

func TestParseRejects(t *testing.T) {
	s := strings.Repeat("0", 32)
	for _, bad := range []string{"", "ab", s + "0", s[1:], "zz" + s[2:], " " + s[1:], strings.Repeat("a", 100)} {
		_, err := Parse(bad)
		if !errors.Is(err, ErrBad) {
			t.Errorf("Parse(%q) err = %v, want ErrBad", bad, err)
		}
		if err != nil && len(err.Error()) > 120 {
			t.Errorf("Parse(%d bytes): error of %d bytes echoes its input", len(bad), len(err.Error()))
		}
	}
	var id ID
	if err := json.Unmarshal([]byte(`"xyz"`), &id); !errors.Is(err, ErrBad) {
		t.Errorf("UnmarshalText: %v", err)
	}
}

func TestZeroAndCompare(t *testing.T) {
	one, two := ID{15: 1}, ID{15: 2}
	if !(ID{}).IsZero() || one.IsZero() {
		t.Errorf("IsZero")
	}
	if one.Compare(two) != -1 || two.Compare(one) != 1 || one.Compare(one) != 0 {
		t.Errorf("Compare")
	}
}

// The derivation is part of the wire contract: a known-answer vector keeps
// it from changing by accident.
func TestFromKey(t *testing.T) {
	pub := make([]byte, KeySize)
	for i := range pub {
		pub[i] = byte(i)
	}
	got := FromKey(pub)
	if want := "653440eaed164393724b26fc1579f4a8"; got.String() != want {
		t.Errorf("FromKey(0..31) = %s, want %s", got, want)
	}
	pub[0] ^= 1
	if FromKey(pub) == got {
		t.Error("a changed key gives the same ID")
	}
	for _, n := range []int{0, 31, 33, 64} {
		if id := FromKey(make([]byte, n)); !id.IsZero() {
			t.Errorf("FromKey of %d bytes = %s, want zero", n, id)
		}
	}
}
