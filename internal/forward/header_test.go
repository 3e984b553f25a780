package forward

import (
	"bytes"
	"errors"
	"testing"

	"weft.dev/weft/internal/siteid"
)

func FuzzHeader(f *testing.F) {
	h := Header{Kind: KindHTTP, Address: "web:80", Segments: []siteid.ID{{1}, {2}}, Next: 1}
	b, _ := h.MarshalBinary()
	f.Add(b)
	f.Add([]byte{headerVersion, byte(KindTCP), 0, 0, 0})
	h.Seal = []byte{1, 2, 3}
	b, _ = h.MarshalBinary()
	f.Add(b)
	h.Trace = TraceContext{TraceID: [16]byte{1}, SpanID: [8]byte{2}, Flags: 1}
	b, _ = h.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		if h.UnmarshalBinary(b) != nil {
			return
		}
		out, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded header does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip changed bytes:\n%x\n%x", b, out)
		}
	})
}

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Kind: KindTCP, Address: "db.prod:5432", Origin: siteid.ID{1, 2}, Segments: []siteid.ID{{3}, {4}, {5}}, Next: 1, Flags: 8, Seal: []byte{7, 8},
		Trace: TraceContext{TraceID: [16]byte{9, 9}, SpanID: [8]byte{1}, Flags: 1}}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var d Header
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if d.Address != h.Address || d.Kind != h.Kind || d.Next != 1 || d.Flags != 8 || d.Trace != h.Trace || len(d.Segments) != 3 || d.Segments[2] != h.Segments[2] || d.Origin != h.Origin || string(d.Seal) != string(h.Seal) {
		t.Fatalf("round trip %+v", d)
	}
	bad := []Header{
		{Kind: 0, Segments: []siteid.ID{{}}},
		{Kind: KindHTTPFrame + 1, Segments: []siteid.ID{{}}},
		{Kind: KindTCP, Address: string(make([]byte, 254)), Segments: []siteid.ID{{}}},
		{Kind: KindTCP, Segments: make([]siteid.ID, 33)},
		{Kind: KindTCP, Segments: []siteid.ID{{}}, Next: 1},
		{Kind: KindTCP},
		{Kind: KindTCP, Segments: []siteid.ID{{}}, Seal: make([]byte, MaxSealLen+1)},
		{Kind: KindTCP, Segments: []siteid.ID{{}}, Trace: TraceContext{TraceID: [16]byte{1}}},
		{Kind: KindTCP, Segments: []siteid.ID{{}}, Trace: TraceContext{SpanID: [8]byte{1}, Flags: 1}},
	}
	for i, h := range bad {
		if _, err := h.MarshalBinary(); !errors.Is(err, ErrBadHeader) {
			t.Errorf("bad header %d marshaled: %v", i, err)
		}
	}
	for _, cut := range []int{0, 1, 4, 5, len(b) - 1} {
		if err := d.UnmarshalBinary(b[:cut]); err == nil {
			t.Errorf("truncated to %d decoded", cut)
		}
	}
	if err := d.UnmarshalBinary(append(b, 0)); err == nil {
		t.Error("trailing byte decoded")
	}
}
