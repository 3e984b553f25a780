package events

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestPubBatchRoundTrip(t *testing.T) {
	evs := [][]byte{[]byte(`{"id":"1"}`), {}, []byte(strings.Repeat("x", 300))}
	b := AppendPubBatch(nil, 7, evs)
	seq, got, err := DecodePubBatch(b, 1<<20)
	if err != nil || seq != 7 || !reflect.DeepEqual(got, evs) {
		t.Fatalf("DecodePubBatch = %d %q %v, want 7 %q", seq, got, err, evs)
	}
	for name, bad := range map[string][]byte{
		"empty":        {},
		"wrong type":   {PubAck, 1, 1, 0},
		"no events":    {PubBatch, 1, 0},
		"too many":     AppendPubBatch(nil, 1, make([][]byte, MaxPubBatch+1)),
		"count > left": {PubBatch, 1, 5, 0},
		"truncated":    b[:len(b)-1],
		"trailing":     append(bytes.Clone(b), 0),
		"non-minimal":  {PubBatch, 0x81, 0x00, 1, 0},
		"over limit":   AppendPubBatch(nil, 1, [][]byte{make([]byte, 11)}),
	} {
		if _, _, err := DecodePubBatch(bad, 10); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: DecodePubBatch(%x) = %v, want ErrBadFrame", name, bad, err)
		}
	}
}

func TestPubReplyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want PubReply
	}{
		{AppendPubHello(nil, 16, MaxPubMessage), PubReply{Type: PubHello, Window: 16, MaxMessage: MaxPubMessage}},
		{AppendPubAck(nil, 1<<40), PubReply{Type: PubAck, Seq: 1 << 40}},
		{AppendPubRefuse(nil, 3, "malformed_event", "event 2: no id", 0), PubReply{Type: PubRefuse, Seq: 3, Code: "malformed_event", Message: "event 2: no id"}},
		{AppendPubRefuse(nil, 4, "back_pressure", strings.Repeat("m", 5000), 5), PubReply{Type: PubRefuse, Seq: 4, Code: "back_pressure", Message: strings.Repeat("m", 4096), RetryAfter: 5}},
	} {
		got, err := DecodePubReply(tc.b)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DecodePubReply(%x) = %+v %v, want %+v", tc.b, got, err, tc.want)
		}
	}
	for _, bad := range [][]byte{{}, {9}, {PubHello, 0, 1}, {PubAck}, {PubAck, 1, 2}, {PubRefuse, 1, 5, 'a'}} {
		if _, err := DecodePubReply(bad); !errors.Is(err, ErrBadFrame) {
			t.Errorf("DecodePubReply(%x) = %v, want ErrBadFrame", bad, err)
		}
	}
}

// FuzzDecodePub drives both decoders of publish stream messages with any
// bytes: they must not panic, must refuse with ErrBadFrame, and what they
// accept must encode back to the same bytes (one encoding per message).
func FuzzDecodePub(f *testing.F) {
	f.Add(AppendPubBatch(nil, 1, [][]byte{[]byte(`{}`), []byte(`{"a":1}`)}))
	f.Add(AppendPubHello(nil, 8, 1<<20))
	f.Add(AppendPubRefuse(nil, 2, "c", "m", 1))
	f.Add([]byte{PubBatch, 1, 0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		if seq, evs, err := DecodePubBatch(b, 1<<10); err == nil {
			if again := AppendPubBatch(nil, seq, evs); !bytes.Equal(again, b) {
				t.Fatalf("batch encodes again as %x, was %x", again, b)
			}
		} else if !errors.Is(err, ErrBadFrame) {
			t.Fatalf("batch: unexpected error %v", err)
		}
		r, err := DecodePubReply(b)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("reply: unexpected error %v", err)
			}
			return
		}
		var again []byte
		switch r.Type {
		case PubHello:
			again = AppendPubHello(nil, r.Window, r.MaxMessage)
		case PubAck:
			again = AppendPubAck(nil, r.Seq)
		case PubRefuse:
			again = AppendPubRefuse(nil, r.Seq, r.Code, r.Message, r.RetryAfter)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("reply %+v encodes again as %x, was %x", r, again, b)
		}
	})
}
