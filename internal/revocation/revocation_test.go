package revocation

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"weft.dev/weft/internal/siteid"
)

func key(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func siteOf(k ed25519.PrivateKey) siteid.ID { return siteid.FromKey(k.Public().(ed25519.PublicKey)) }

func TestStatement(t *testing.T) {
	k := key(1)
	s, err := New(BySite, siteOf(k), k, 1700000000, "key leaked")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Statement
	if err := back.UnmarshalBinary(b); err != nil || back != s {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	if err := back.Verify(nil); err != nil {
		t.Fatal(err)
	}
	other := key(2)
	orgOK := func(site siteid.ID, orgKey []byte) error { return nil }
	for _, tc := range []struct {
		name string
		s    func() Statement
		org  Authority
		want error
	}{
		{"another site's key", func() Statement { x, _ := New(BySite, siteOf(k), other, 1, ""); return x }, nil, ErrUnauthorized},
		{"reason altered", func() Statement { x := s; x.Reason = "nothing"; return x }, nil, ErrUnauthorized},
		{"site altered", func() Statement { x := s; x.Site = siteOf(other); return x }, nil, ErrUnauthorized},
		{"signature bit", func() Statement { x := s; x.Sig[0] ^= 1; return x }, nil, ErrUnauthorized},
		{"organisation, none accepted", func() Statement { x, _ := New(ByOrganisation, siteOf(k), other, 1, ""); return x }, nil, ErrUnauthorized},
		{"organisation refused", func() Statement { x, _ := New(ByOrganisation, siteOf(k), other, 1, ""); return x }, func(siteid.ID, []byte) error { return errors.New("not ours") }, ErrUnauthorized},
		{"organisation accepted", func() Statement { x, _ := New(ByOrganisation, siteOf(k), other, 1, ""); return x }, orgOK, nil},
		{"organisation accepted, kind switched to site", func() Statement {
			x, _ := New(ByOrganisation, siteOf(k), other, 1, "")
			x.Kind = BySite
			return x
		}, orgOK, ErrUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := tc.s()
			if err := x.Verify(tc.org); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	for i := range b {
		if err := back.UnmarshalBinary(b[:i]); !errors.Is(err, ErrInvalid) {
			t.Errorf("prefix %d: %v", i, err)
		}
	}
	if err := back.UnmarshalBinary(append(b, 0)); !errors.Is(err, ErrInvalid) {
		t.Errorf("trailing byte: %v", err)
	}
}

func FuzzStatement(f *testing.F) {
	k := key(1)
	s, _ := New(BySite, siteOf(k), k, 1700000000, "key leaked")
	b, _ := s.MarshalBinary()
	f.Add(b)
	s, _ = NewKey(k, key(2).Public().(ed25519.PublicKey), 1700000000, "rotated")
	b, _ = s.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Statement
		if err := s.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		b2, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded statement does not encode: %v", err)
		}
		var s2 Statement
		if err := s2.UnmarshalBinary(b2); err != nil || s2 != s {
			t.Fatalf("re-encoding changed it: %v", err)
		}
		if s.Verify(nil) == nil && (s.Kind == ByOrganisation || siteid.FromKey(s.Key[:]) != s.Site) {
			t.Fatal("verified a statement not signed by the site")
		}
	})
}

// TestOperationalKey: a statement revoking an operational key round-trips
// and verifies when the site's identity key signs it, and not when another
// key does or the revoked key is altered.
func TestOperationalKey(t *testing.T) {
	k, op := key(1), key(2).Public().(ed25519.PublicKey)
	s, err := NewKey(k, op, 1700000000, "rotated")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.MarshalBinary()
	var back Statement
	if err := back.UnmarshalBinary(b); err != nil || back != s || back.Verify(nil) != nil {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	if string(back.Revoked[:]) != string(op) || back.Site != siteOf(k) {
		t.Fatal("wrong key or site")
	}
	altered := s
	altered.Revoked[0] ^= 1
	if err := altered.Verify(nil); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("altered revoked key: %v", err)
	}
	forged, _ := NewKey(key(3), op, 1, "")
	forged.Site = siteOf(k)
	if err := forged.Verify(nil); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("another site's key: %v", err)
	}
	if _, err := New(OperationalKey, siteOf(k), k, 1, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("New of kind 3: %v", err)
	}
	for i := range b {
		if err := back.UnmarshalBinary(b[:i]); !errors.Is(err, ErrInvalid) {
			t.Errorf("prefix %d: %v", i, err)
		}
	}
}
