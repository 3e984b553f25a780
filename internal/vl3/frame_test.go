package vl3

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"testing"
)

// ipv4 is a minimal IPv4 packet from src to dst with n bytes of payload.
func ipv4(src, dst string, n int) []byte {
	p := make([]byte, 20+n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8], p[9] = 64, 17
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	return p
}

func TestFrames(t *testing.T) {
	good := ipv4("100.100.1.2", "100.100.9.3", 100)
	bad := []byte{0x60, 0, 0, 0} // IPv6, and short
	var b []byte
	b = AppendFrame(b, good)
	b = AppendFrame(b, bad)
	b = AppendFrame(b, ipv4("100.100.1.2", "100.100.9.4", 0))
	fr := NewFrameReader(bytes.NewReader(b))
	pkt, dst, err := fr.Next()
	if err != nil || !bytes.Equal(pkt, good) || dst.String() != "100.100.9.3" {
		t.Fatalf("first frame: %v %v", dst, err)
	}
	if _, _, err := fr.Next(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("second frame: %v, want ErrMalformed", err)
	}
	if _, dst, err := fr.Next(); err != nil || dst.String() != "100.100.9.4" {
		t.Fatalf("third frame after a malformed one: %v %v", dst, err)
	}
	if _, _, err := fr.Next(); err != io.EOF {
		t.Fatalf("end: %v, want EOF", err)
	}
	if _, _, err := NewFrameReader(bytes.NewReader(b[:50])).Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut frame: %v", err)
	}
}

func TestAddresses(t *testing.T) {
	p := ipv4("100.100.1.2", "100.100.9.3", 8)
	for name, mod := range map[string]func([]byte) []byte{
		"short":        func(p []byte) []byte { return p[:19] },
		"version":      func(p []byte) []byte { p[0] = 0x65; return p },
		"ihl small":    func(p []byte) []byte { p[0] = 0x44; return p },
		"ihl large":    func(p []byte) []byte { p[0] = 0x4f; return p },
		"total length": func(p []byte) []byte { return p[:27] },
	} {
		if _, _, err := Addresses(mod(bytes.Clone(p))); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	src, dst, err := Addresses(p)
	if err != nil || src.String() != "100.100.1.2" || dst.String() != "100.100.9.3" {
		t.Fatalf("%v %v %v", src, dst, err)
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add(AppendFrame(nil, ipv4("100.100.1.2", "100.100.9.3", 10)))
	f.Add([]byte{0, 3, 1, 2, 3, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := NewFrameReader(bytes.NewReader(b))
		read := 0
		for {
			pkt, dst, err := fr.Next()
			if err != nil && !errors.Is(err, ErrMalformed) {
				return
			}
			read += 2 + len(pkt)
			if read > len(b) {
				t.Fatalf("read %d bytes of %d", read, len(b))
			}
			if err == nil {
				// A packet that passed is re-framed as itself.
				if _, d, err := NewFrameReader(bytes.NewReader(AppendFrame(nil, pkt))).Next(); err != nil || d != dst {
					t.Fatalf("re-framed: %v %v", d, err)
				}
			}
		}
	})
}
