package events

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/siteid"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.*", "a", false},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{">", "a", true},
		{"*.b.>", "x.b.c", true},
		{"*.b.>", "x.c.c", false},
		{"a.b.c", "a.b", false},
		{"a.b", "a.b.c", false},
	} {
		if got := Match(tc.p, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, s := range []string{"orders", "orders.eu-west.created", "a_b.C9"} {
		if err := ValidateSubject(s); err != nil {
			t.Errorf("ValidateSubject(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "a..b", ".a", "a.", "a.*", "a b", "a.>"} {
		if ValidateSubject(s) == nil {
			t.Errorf("ValidateSubject(%q) accepted", s)
		}
	}
	for _, p := range []string{"a.*", "a.>", ">", "*.*"} {
		if err := ValidatePattern(p); err != nil {
			t.Errorf("ValidatePattern(%q): %v", p, err)
		}
	}
	for _, p := range []string{"a.>.b", "a*", "a.>x"} {
		if ValidatePattern(p) == nil {
			t.Errorf("ValidatePattern(%q) accepted", p)
		}
	}
	if k, p, ok := ParseInterest(Interest(Queue, "jobs.*")); !ok || k != Queue || p != "jobs.*" {
		t.Errorf("ParseInterest round trip: %v %q %v", k, p, ok)
	}
	for _, s := range []string{"", "x:a", "t:", "t:a..b", "ta"} {
		if _, _, ok := ParseInterest(s); ok {
			t.Errorf("ParseInterest(%q) accepted", s)
		}
	}
}

func id(b byte) siteid.ID { return siteid.ID{b} }

// TestSplit: a tree from a over a-b, b-c, b-d, a-e sends one copy to b (for c
// and d) and one to e; b delivers locally only when it is a destination.
func TestSplit(t *testing.T) {
	a, b, c, d, e := id(1), id(2), id(3), id(4), id(5)
	paths := [][]siteid.ID{{a, b, c}, {a, b, d}, {a, e}, {a}}
	local, br := Split(a, paths)
	want := []Branch{{Next: b, Paths: [][]siteid.ID{{b, c}, {b, d}}}, {Next: e, Paths: [][]siteid.ID{{e}}}}
	if !local || !reflect.DeepEqual(br, want) {
		t.Fatalf("at a: local %v, branches %v", local, br)
	}
	local, br = Split(b, br[0].Paths)
	want = []Branch{{Next: c, Paths: [][]siteid.ID{{c}}}, {Next: d, Paths: [][]siteid.ID{{d}}}}
	if local || !reflect.DeepEqual(br, want) {
		t.Fatalf("at b: local %v, branches %v", local, br)
	}
	if local, br := Split(c, [][]siteid.ID{{b, c}}); local || br != nil {
		t.Fatalf("misrouted path was followed: %v %v", local, br)
	}
}

// TestSplitManyBranches: a frame with as many paths as a frame may carry,
// two to each of MaxPaths/2 neighbours, splits into one branch per
// neighbour, in order: the index Split builds beyond splitScan branches
// changes nothing but the cost.
func TestSplitManyBranches(t *testing.T) {
	self := id(0)
	const n = MaxPaths / 2
	next := func(i int) siteid.ID { return siteid.ID{1, byte(i >> 8), byte(i)} }
	var paths [][]siteid.ID
	for i := range n {
		paths = append(paths, []siteid.ID{self, next(i)})
	}
	for i := range n {
		paths = append(paths, []siteid.ID{self, next(i), id(9)})
	}
	local, got := Split(self, append(paths, []siteid.ID{self}))
	if !local || len(got) != n {
		t.Fatalf("local %v, %d branches; want true, %d", local, len(got), n)
	}
	for i, b := range got {
		if want := (Branch{Next: next(i), Paths: [][]siteid.ID{{next(i)}, {next(i), id(9)}}}); !reflect.DeepEqual(b, want) {
			t.Fatalf("branch %d: %v, want %v", i, b, want)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []Frame{
		{Type: FrameEvent, Kind: Topic, Subject: "a.b", Origin: id(1), Paths: [][]siteid.ID{{id(2), id(3)}, {id(2)}}, Payload: []byte("{}")},
		{Type: FrameData, Kind: Queue, Subject: "q", Origin: id(1), Sites: []siteid.ID{id(4), id(5)}, Payload: []byte("x")},
		{Type: FrameAck, Mark: 1 << 40},
		{Type: FrameMark, Mark: 9},
	} {
		b := AppendFrame(nil, &f)
		got, _, err := ReadFrame(bytes.NewReader(b), nil)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if len(got.Payload) == 0 {
			got.Payload = f.Payload
		}
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("round trip: got %+v, want %+v", got, f)
		}
	}
}

func TestFrameRefused(t *testing.T) {
	good := AppendFrame(nil, &Frame{Type: FrameEvent, Kind: Topic, Subject: "a", Origin: id(1), Paths: [][]siteid.ID{{id(2)}}})
	for name, body := range map[string][]byte{
		"empty":       {},
		"type":        {9},
		"kind":        {FrameEvent, 'x'},
		"subject":     append([]byte{FrameEvent, 't', 3}, "a.*"...),
		"truncated":   good[4 : len(good)-3],
		"trailing":    append(append([]byte{}, good[4:]...), 0),
		"many paths":  append(append(append([]byte{FrameEvent, 't', 1, 'a'}, make([]byte, 16)...), 0xff, 0x1f), 1),
		"long path":   append(append(append([]byte{FrameEvent, 't', 1, 'a'}, make([]byte, 16)...), 1, 33), make([]byte, 33*16)...),
		"ack varint":  {FrameAck, 0xff},
		"ack missing": {FrameAck},
	} {
		if _, err := DecodeFrame(body); err == nil {
			t.Errorf("%s: accepted %x", name, body)
		}
	}
}

// FuzzDecodeFrame drives the decoder of frames from other sites: no panics,
// and what it accepts encodes back to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, &Frame{Type: FrameEvent, Kind: Topic, Subject: "a.b", Origin: id(1), Paths: [][]siteid.ID{{id(2)}}, Payload: []byte("p")})[4:])
	f.Add(AppendFrame(nil, &Frame{Type: FrameData, Kind: Queue, Subject: "q", Sites: []siteid.ID{id(3)}, Payload: []byte("p")})[4:])
	f.Add(AppendFrame(nil, &Frame{Type: FrameAck, Mark: 5})[4:])
	f.Add(AppendFrame(nil, &Frame{Type: FrameEvent, Trace: testTrace, Kind: Topic, Subject: "a", Origin: id(1), Paths: [][]siteid.ID{{id(2)}}, Payload: []byte("p")})[4:])
	f.Add(AppendFrame(nil, &Frame{Type: FrameData, Trace: testTrace, Kind: Topic, Subject: "a", Sites: []siteid.ID{id(3)}, Payload: []byte("p")})[4:])
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			return
		}
		if again := AppendFrame(nil, &fr)[4:]; !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

// FuzzReadFrame drives the reader of event streams from other sites with
// any bytes, read as frames one after another: it must not panic, must stop
// at the first frame it refuses with ErrBadFrame or at the end of the
// bytes, and every frame it accepts encodes back to the bytes it came from.
func FuzzReadFrame(f *testing.F) {
	data := AppendFrame(nil, &Frame{Type: FrameData, Kind: Topic, Subject: "t", Origin: id(1), Sites: []siteid.ID{id(2)}, Payload: []byte("{}")})
	f.Add(AppendFrame(data, &Frame{Type: FrameMark, Mark: 1}))
	f.Add(AppendFrame(nil, &Frame{Type: FrameData, Trace: testTrace, Kind: Topic, Subject: "t", Origin: id(1), Sites: []siteid.ID{id(2)}, Payload: []byte("{}")}))
	f.Add(AppendFrame(nil, &Frame{Type: FrameEvent, Kind: Queue, Subject: "q", Origin: id(1), Paths: [][]siteid.ID{{id(2), id(3)}}, Sites: []siteid.ID{id(4)}, Payload: []byte("{}")}))
	f.Add([]byte{0, 0, 0, 0})             // an empty frame
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}) // over the size limit
	f.Add(data[:len(data)-1])             // cut short
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		var buf []byte
		for {
			start := len(b) - r.Len()
			fr, nb, err := ReadFrame(r, buf)
			buf = nb
			switch {
			case errors.Is(err, io.EOF) && start == len(b), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, ErrBadFrame):
				return
			case err != nil:
				t.Fatalf("frame at %d: unexpected error %v", start, err)
			}
			if again := AppendFrame(nil, &fr); !bytes.Equal(again, b[start:len(b)-r.Len()]) {
				t.Fatalf("frame at %d encodes again as %x, was read from %x", start, again, b[start:len(b)-r.Len()])
			}
		}
	})
}

var testTrace = tracectx.Context{TraceID: [16]byte{1, 2}, SpanID: [8]byte{3}, Flags: 1}

// TestTracedFrame: a traced event frame carries its trace context, and
// an untraced one is byte for byte what it was before the field; a traced
// frame with a zero ID, or cut inside the context, is refused.
func TestTracedFrame(t *testing.T) {
	for _, typ := range []byte{FrameEvent, FrameData} {
		f := Frame{Type: typ, Kind: Topic, Subject: "a.b", Origin: id(1), Sites: []siteid.ID{id(2)}, Payload: []byte("{}")}
		if typ == FrameEvent {
			f.Paths = [][]siteid.ID{{id(2)}}
		}
		plain := AppendFrame(nil, &f)
		if plain[4] != typ {
			t.Fatalf("untraced frame's type byte %#x, want %#x", plain[4], typ)
		}
		f.Trace = testTrace
		traced := AppendFrame(nil, &f)
		if len(traced) != len(plain)+tracectx.ContextSize || traced[4] != typ|0x80 {
			t.Fatalf("traced frame: %d bytes (untraced %d), type %#x", len(traced), len(plain), traced[4])
		}
		got, err := DecodeFrame(traced[4:])
		if err != nil || got.Type != typ || got.Trace != testTrace || string(got.Payload) != "{}" {
			t.Fatalf("decoded %+v, %v", got, err)
		}
		zero := bytes.Clone(traced)
		clear(zero[5 : 5+16])
		if _, err := DecodeFrame(zero[4:]); !errors.Is(err, ErrBadFrame) {
			t.Errorf("zero trace ID accepted: %v", err)
		}
		if _, err := DecodeFrame(traced[4 : 5+10]); !errors.Is(err, ErrBadFrame) {
			t.Errorf("truncated trace context accepted: %v", err)
		}
	}
	ack := AppendFrame(nil, &Frame{Type: FrameAck, Mark: 1})
	ack[4] |= 0x80
	if _, err := DecodeFrame(ack[4:]); !errors.Is(err, ErrBadFrame) {
		t.Errorf("traced ack accepted: %v", err)
	}
}
