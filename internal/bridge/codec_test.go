package bridge

import (
	"bytes"
	"errors"
	"testing"

	"weft.dev/weft/internal/events/cloudevent"
)

var bindings = map[string]Binding{"kafka": {Prefix: "ce_"}, "amqp": {Prefix: "cloudEvents:"}, "mqtt": {Prefix: ""}, "nats": {Prefix: "ce-"}}

// roundTrip encodes e in binary mode and decodes it again.
func roundTrip(t *testing.T, e *cloudevent.Event, b Binding) cloudevent.Decoded {
	t.Helper()
	hs, ct, body, err := Encode(e, b)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := Decode(&Message{Headers: hs, ContentType: ct, Body: body}, b, Plain{Source: "/plain", Type: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	return evs[0]
}

func TestBinaryRoundTrip(t *testing.T) {
	js := []byte(`{"specversion":"1.0","id":"42","source":"/s","type":"t","subject":"sub","time":"2026-01-02T03:04:05.123Z","dataschema":"http://x/s","datacontenttype":"application/json","traceparent":"00-abc","weftn":7,"data":{"a":1}}`)
	e, err := cloudevent.Unmarshal(js)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cloudevent.Marshal(&e)
	for name, b := range bindings {
		got := roundTrip(t, &e, b)
		// Extensions travel as strings in every binding but JSON.
		e2 := e.Clone()
		e2.SetExtension("weftn", "7")
		want2, _ := cloudevent.Marshal(&e2)
		if !bytes.Equal(got.JSON, want2) {
			t.Errorf("%s: got\n%s\nwant\n%s (from %s)", name, got.JSON, want2, want)
		}
	}
}

func TestDecodeModes(t *testing.T) {
	structured := []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"x"}`)
	for _, tc := range []struct {
		name    string
		m       Message
		b       Binding
		id, src string
		err     error
	}{
		{name: "structured", m: Message{ContentType: "application/cloudevents+json", Body: structured}, b: bindings["kafka"], id: "1", src: "/s"},
		{name: "plain with key", m: Message{Key: "orders/0/17", Body: []byte("hello"), Headers: []Header{{"id", "ignored"}}}, b: bindings["mqtt"], id: "orders/0/17", src: "/plain"},
		{name: "binary, prefix case", m: Message{Headers: []Header{{"CE-SPECVERSION", "1.0"}, {"Ce-Id", "9"}, {"ce-source", "/b"}, {"ce-type", "t"}}}, b: bindings["nats"], id: "9", src: "/b"},
		{name: "binary missing id", m: Message{Headers: []Header{{"ce_specversion", "1.0"}, {"ce_source", "/b"}, {"ce_type", "t"}}}, b: bindings["kafka"], err: ErrMalformed},
		{name: "structured not JSON", m: Message{ContentType: "application/cloudevents+json", Body: []byte("{")}, b: bindings["amqp"], err: ErrMalformed},
		{name: "bad JSON data", m: Message{ContentType: "application/json", Headers: []Header{{"specversion", "1.0"}, {"id", "1"}, {"source", "/s"}, {"type", "t"}}, Body: []byte("{")}, b: bindings["mqtt"], err: ErrMalformed},
		{name: "too large", m: Message{Body: make([]byte, cloudevent.DefaultMaxSize+1)}, b: bindings["mqtt"], err: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := Decode(&tc.m, tc.b, Plain{Source: "/plain", Type: "plain"})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e := evs[0].Event; e.ID() != tc.id || e.Source() != tc.src {
				t.Fatalf("id %q source %q, want %q %q", e.ID(), e.Source(), tc.id, tc.src)
			}
		})
	}
}

// FuzzDecode: any message decodes into valid events or ErrMalformed, never
// a panic, and what decodes survives a binary round trip unchanged.
func FuzzDecode(f *testing.F) {
	f.Add("ce_specversion", "1.0", "ce_id", "1", "application/json", []byte(`{"a":1}`), "k")
	f.Add("specversion", "1.0", "source", "/s", "", []byte("x"), "")
	f.Add("x", "y", "z", "w", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t"}`), "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, ct string, body []byte, key string) {
		for _, b := range bindings {
			m := &Message{Headers: []Header{{k1, v1}, {k2, v2}, {b.Prefix + "type", "t"}, {b.Prefix + "source", "/s"}}, ContentType: ct, Body: body, Key: key}
			evs, err := Decode(m, b, Plain{Source: "/plain", Type: "plain"})
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v is not ErrMalformed", err)
				}
				continue
			}
			for _, d := range evs {
				if err := d.Event.Validate(); err != nil {
					t.Fatalf("invalid event decoded: %v", err)
				}
				if _, err := cloudevent.Unmarshal(d.JSON); err != nil {
					t.Fatalf("its JSON does not decode: %v", err)
				}
				e, _ := cloudevent.Unmarshal(d.JSON)
				hs, ct, body, err := Encode(&e, b)
				if err != nil {
					t.Fatal(err)
				}
				again, err := Decode(&Message{Headers: hs, ContentType: ct, Body: body}, b, Plain{})
				if err != nil {
					t.Fatalf("a decoded event does not decode again: %v", err)
				}
				if len(again) != 1 || again[0].Event.ID() != e.ID() || !bytes.Equal(again[0].Event.Data(), e.Data()) {
					t.Fatalf("round trip changed the event: %s -> %s", d.JSON, again[0].JSON)
				}
			}
		}
	})
}
