package cloudevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func req(body string, h map[string]string) *http.Request {
	r := httptest.NewRequest("POST", "/v1/topics/x", strings.NewReader(body))
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return r
}

func TestDecode(t *testing.T) {
	binary := map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t", "Content-Type": "text/plain"}
	for _, tc := range []struct {
		name string
		r    *http.Request
		n    int
		err  error
		why  string
	}{
		{"binary", req("hello", binary), 1, nil, ""},
		{"structured", req(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`, map[string]string{"Content-Type": "application/cloudevents+json"}), 1, nil, ""},
		{"batch", req(`[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"2","source":"/s","type":"t"}]`, map[string]string{"Content-Type": "application/cloudevents-batch+json"}), 2, nil, ""},
		{"no mode", req("x", map[string]string{"Content-Type": "text/plain"}), 0, ErrMalformed, "neither binary"},
		{"missing id", req("x", map[string]string{"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}), 0, ErrMalformed, "id"},
		{"bad structured", req(`{"specversion":"1.0",`, map[string]string{"Content-Type": "application/cloudevents+json"}), 0, ErrMalformed, ""},
		{"batch with a bad event", req(`[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","source":"/s","type":"t"}]`, map[string]string{"Content-Type": "application/cloudevents-batch+json"}), 0, ErrMalformed, "event 1"},
		{"empty batch", req(`[]`, map[string]string{"Content-Type": "application/cloudevents-batch+json"}), 0, ErrMalformed, "empty"},
		{"reserved extension", req("x", map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t", "ce-weftseq": "7"}), 0, ErrMalformed, "reserved"},
		{"too large", req(strings.Repeat("x", 2000), binary), 0, ErrTooLarge, "1000 bytes"},
		{"structured as XML", req(`<event/>`, map[string]string{"Content-Type": "application/cloudevents+xml"}), 0, ErrUnsupportedFormat, "application/cloudevents+json"},
		{"binary JSON that is not", req(`{"a":1} x`, map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t", "Content-Type": "application/json; charset=utf-8"}), 0, ErrMalformed, "not valid JSON"},
		{"extension without a name", req("x", map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t", "ce-": "v"}), 0, ErrMalformed, "names no attribute"},
		{"attribute not UTF-8", req("x", map[string]string{"ce-specversion": "1.0", "ce-id": "\xfa", "ce-source": "/s", "ce-type": "t"}), 0, ErrMalformed, "not valid UTF-8"},
		{"structured trailing garbage", req(`{"specversion":"1.0","id":"1","source":"/s","type":"t"} x`, map[string]string{"Content-Type": "application/cloudevents+json"}), 0, ErrMalformed, "after top-level value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := Decode(tc.r, 1000)
			if !errors.Is(err, tc.err) || len(evs) != tc.n {
				t.Fatalf("got %d events, %v; want %d, %v", len(evs), err, tc.n, tc.err)
			}
			if err != nil && !strings.Contains(err.Error(), tc.why) {
				t.Errorf("reason %q lacks %q", err, tc.why)
			}
		})
	}
}

// TestStructuredDataStaysJSON: in the JSON format an event without
// datacontenttype has JSON data; it must reach subscribers as JSON, not as
// a string holding it.
func TestStructuredDataStaysJSON(t *testing.T) {
	ev := `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":[1,2]}}`
	for ct, body := range map[string]string{"application/cloudevents+json": ev, "application/cloudevents-batch+json": "[" + ev + "]"} {
		evs, err := Decode(req(body, map[string]string{"Content-Type": ct}), DefaultMaxSize)
		if err != nil {
			t.Fatalf("%s: %v", ct, err)
		}
		if got := string(evs[0].JSON); got != ev {
			t.Errorf("%s: encoded as %s, want %s", ct, got, ev)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	evs, err := Decode(req("hello", map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t", "ce-foo": "bar", "Content-Type": "text/plain"}), DefaultMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Unmarshal(evs[0].JSON)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != "1" || e.Extensions()["foo"] != "bar" || !bytes.Equal(e.Data(), []byte("hello")) {
		t.Fatalf("round trip changed the event: %v", e)
	}
}

// TestAppendSeq: the spliced attribute is the event's extension, whatever
// the event's JSON looks like around its closing brace.
func TestAppendSeq(t *testing.T) {
	evs, err := Decode(req("hello", map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t", "Content-Type": "text/plain"}), DefaultMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, js := range [][]byte{evs[0].JSON, append(append([]byte(nil), evs[0].JSON...), " \n"...)} {
		e, err := Unmarshal(AppendSeq([]byte("junk"), js, 42)[4:])
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		if e.ID() != "1" || e.Extensions()[SeqExtension] != "42" {
			t.Fatalf("%s: got %v", js, e)
		}
	}
	if got := string(AppendSeq(nil, []byte("{ }"), 1)); got != `{ "weftseq":"1"}` {
		t.Errorf("empty object: %s", got)
	}
}

// TestAppendAttrs: the distributed-tracing attributes are spliced into an
// event's JSON, which then decodes with them, quoted as JSON wants.
func TestAppendAttrs(t *testing.T) {
	js := []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"traceparent":"inner"}}`)
	const tp, ts = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", `k=v"\\x`
	out := AppendAttrs(nil, js, TraceparentAttr, tp, TracestateAttr, ts)
	e, err := Unmarshal(out)
	if err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if e.Extensions()[TraceparentAttr] != tp || e.Extensions()[TracestateAttr] != ts {
		t.Errorf("%s: extensions %v", out, e.Extensions())
	}
	if err := CheckStreamable(out); err != nil {
		t.Error(err)
	}
}

// FuzzDecode drives the request decoder with any body under each content
// mode: it must not panic, and what it accepts must re-encode and decode.
func FuzzDecode(f *testing.F) {
	f.Add(0, []byte("hello"))
	f.Add(1, []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"x"}`))
	f.Add(2, []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AA=="}]`))
	f.Fuzz(func(t *testing.T, mode int, body []byte) {
		h := http.Header{}
		switch mode % 3 {
		case 0:
			h.Set("ce-specversion", "1.0")
			h.Set("ce-id", "1")
			h.Set("ce-source", "/s")
			h.Set("ce-type", "t")
		case 1:
			h.Set("Content-Type", "application/cloudevents+json")
		default:
			h.Set("Content-Type", "application/cloudevents-batch+json")
		}
		evs, err := DecodeBytes(h, body)
		if err != nil {
			return
		}
		for i := range evs {
			if _, err := Unmarshal(evs[i].JSON); err != nil {
				t.Fatalf("accepted event does not decode again: %v", err)
			}
			if err := CheckStreamable(evs[i].JSON); err != nil {
				t.Fatalf("accepted event cannot be streamed: %v: %q", err, evs[i].JSON)
			}
		}
	})
}

// TestBatchKeepsJSON: a batch's events keep the publisher's encoding, with
// line breaks between tokens taken out.
func TestBatchKeepsJSON(t *testing.T) {
	body := "[{\"specversion\":\"1.0\",\n \"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"datacontenttype\":\"text/plain\",\"data\":\"a\\nb\"}," +
		`{"specversion":"1.0","id":"2","source":"/s","type":"t","data_base64":"AA=="}]`
	evs, err := Decode(req(body, map[string]string{"Content-Type": "application/cloudevents-batch+json"}), DefaultMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(evs[0].JSON); got != `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"a\nb"}` {
		t.Errorf("first event: %s", got)
	}
	// Binary data without a content type stays as the publisher sent it:
	// only binary mode, whose body has no type at all, gets one.
	if got := string(evs[1].JSON); got != `{"specversion":"1.0","id":"2","source":"/s","type":"t","data_base64":"AA=="}` {
		t.Errorf("second event: %s", got)
	}
}

// TestMediaTypeCase: a media type in capitals is JSON to the SDK's
// encoder but not to its decoder; the event must decode again, with its JSON
// data as JSON, or the next site cannot take it.
func TestMediaTypeCase(t *testing.T) {
	for _, ct := range []string{"Application/JSON", " application/json", "APPLICATION/JSON; charset=utf-8"} {
		evs, err := Decode(req(`{"a":[1,2]}`, map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t", "Content-Type": ct}), DefaultMaxSize)
		if err != nil {
			t.Fatalf("%q: %v", ct, err)
		}
		e, err := Unmarshal(evs[0].JSON)
		if err != nil || string(e.Data()) != `{"a":[1,2]}` {
			t.Errorf("%q: %s decodes as %q, %v", ct, evs[0].JSON, e.Data(), err)
		}
	}
}

// FuzzDecodeBinary drives binary mode with any attribute values, content
// type, extension and body: what it accepts must decode again from its JSON,
// as the next site decodes it, with the same ID and data, and be streamable.
func FuzzDecodeBinary(f *testing.F) {
	f.Add("text/plain", "1", "/s", "t", "ext", "v", []byte("hello"))
	f.Add("application/json", "2", "https://example.com/x", "a.b", "", "", []byte(`{"a":[1,2]}`))
	f.Add("Application/json", "\xfa", "/s", "t", "", "", []byte(`{"a":[1,2]}`))
	f.Add("", "3", "urn:x", "t", "weftseq", "1", []byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, ct, id, source, typ, ext, val string, body []byte) {
		h := http.Header{}
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": id, "ce-source": source, "ce-type": typ, "Content-Type": ct, "ce-" + ext: val} {
			h.Set(k, v)
		}
		evs, err := DecodeBytes(h, body)
		if err != nil {
			return
		}
		e, err := Unmarshal(evs[0].JSON)
		if err != nil {
			t.Fatalf("accepted %s, which does not decode again: %v", evs[0].JSON, err)
		}
		if e.ID() != evs[0].Event.ID() || !bytes.Equal(e.Data(), evs[0].Event.Data()) {
			t.Fatalf("accepted %s, which decodes again as ID %q, data %q; was %q, %q", evs[0].JSON, e.ID(), e.Data(), evs[0].Event.ID(), evs[0].Event.Data())
		}
		if err := CheckStreamable(evs[0].JSON); err != nil {
			t.Fatalf("accepted %s, which cannot be streamed: %v", evs[0].JSON, err)
		}
	})
}

// FuzzSplitArray checks the batch splitter against encoding/json: the same
// elements for every array, an error for everything else.
func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{`[]`, ` [ {"a":"]}\"x,"} , [1,[2]] ,"s\\",null,3 ] `, `{"a":1}`, `[1,]`, `[{"a":[{}]},{}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := splitArray(b)
		var want []json.RawMessage
		werr := json.Unmarshal(b, &want)
		if werr == nil && want == nil {
			werr = errors.New("null") // not an array, though encoding/json takes it for an empty one
		}
		if (err != nil) != (werr != nil) {
			t.Fatalf("%q: error %v, encoding/json %v", b, err, werr)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d elements, encoding/json %d", b, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%q: element %d is %q, encoding/json %q", b, i, got[i], want[i])
			}
		}
	})
}

// FuzzUnmarshal drives the decoder of events arriving from other sites.
func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		Unmarshal(b)
	})
}

// TestKey: Key reads what Unmarshal would of an encoded event's source and
// id, and refuses what is not an encoded event.
func TestKey(t *testing.T) {
	ev := []byte(`{"specversion":"1.0","id":"7","source":"/s","type":"t","data":{"id":"inner"}}`)
	e, err := Unmarshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if src, id, err := Key(ev); err != nil || src != e.Source() || id != e.ID() {
		t.Errorf("Key = %q %q %v, want %q %q", src, id, err, e.Source(), e.ID())
	}
	if _, id, _ := Key([]byte(`{"ID":"no","id":"7","source":"/s"}`)); id != "7" {
		t.Errorf("Key took an attribute of another case for the id: %q", id)
	}
	for _, bad := range []string{``, `[]`, `{"id":"1"}`, `{"id":1,"source":"/s"}`, `{"id":"","source":"/s"}`, "{\"id\":\"1\",\n\"source\":\"/s\"}", `{"id":"1","source":"/s"`} {
		if _, _, err := Key([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Key(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func BenchmarkKey(b *testing.B) {
	ev := []byte(`{"specversion":"1.0","id":"123456","source":"/bench","type":"bench","datacontenttype":"text/plain","data":"` + strings.Repeat("x", 256) + `"}`)
	b.Run("Key", func(b *testing.B) {
		for b.Loop() {
			Key(ev)
		}
	})
	b.Run("Unmarshal", func(b *testing.B) {
		for b.Loop() {
			Unmarshal(ev)
		}
	})
}

// FuzzKey: Key never panics, and for any encoded event that Unmarshal
// accepts it reads the same source and id.
func FuzzKey(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"7","source":"/s","type":"t","data":{"id":"inner","source":"x"}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"a\"b\\u00e9","source" : "/s","type":"t","data":["id",{"id":"x"}]}`))
	f.Add([]byte(`{"data":"{\"id\":\"x\"}","id":"1","source":"/s","specversion":"1.0","type":"t"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		src, id, err := Key(b)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("Key: unexpected error %v", err)
		}
		if CheckStreamable(b) != nil {
			return
		}
		e, uerr := Unmarshal(b)
		if uerr != nil {
			return
		}
		if err != nil || src != e.Source() || id != e.ID() {
			t.Fatalf("Key(%s) = %q %q %v; Unmarshal read %q %q", b, src, id, err, e.Source(), e.ID())
		}
	})
}
