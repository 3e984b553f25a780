package cloudevent

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// viaSDK is what DecodeBytes answered for binary mode before
// decodeBinaryV1: the SDK's binding, then json.Marshal.
func viaSDK(h http.Header, body []byte) ([]Decoded, error) {
	return decodeSDK(h, body, strings.ToLower(h.Get("Content-Type")))
}

// sameAsSDK decodes h and body with decodeBinaryV1 and through the SDK and
// fails t unless both accept with the same event and the same JSON, or
// both refuse for the same class of reason (with the same words when
// exact). It reports whether decodeBinaryV1 took the request.
func sameAsSDK(t *testing.T, h http.Header, body []byte, exact bool) bool {
	t.Helper()
	got, ok, err := decodeBinaryV1(h, body)
	if !ok {
		return false
	}
	want, werr := viaSDK(h, body)
	switch {
	case (err == nil) != (werr == nil):
		t.Fatalf("headers %q, body %q: decodeBinaryV1 %v, the SDK %v", h, body, err, werr)
	case err != nil:
		for _, class := range []error{ErrMalformed, ErrTooLarge, ErrUnsupportedFormat} {
			if errors.Is(err, class) != errors.Is(werr, class) {
				t.Fatalf("headers %q, body %q: decodeBinaryV1 %v, the SDK %v", h, body, err, werr)
			}
		}
		if exact && err.Error() != werr.Error() {
			t.Fatalf("headers %q, body %q: decodeBinaryV1 %q, the SDK %q", h, body, err, werr)
		}
	case len(got) != 1 || len(want) != 1:
		t.Fatalf("headers %q: %d events, the SDK %d", h, len(got), len(want))
	case string(got[0].JSON) != string(want[0].JSON):
		t.Fatalf("headers %q, body %q:\n got %s\nwant %s", h, body, got[0].JSON, want[0].JSON)
	case !reflect.DeepEqual(got[0].Event, want[0].Event):
		t.Fatalf("headers %q, body %q: event\n got %#v\nwant %#v", h, body, got[0].Event, want[0].Event)
	}
	return true
}

func binaryHeader(kv ...string) http.Header {
	h := http.Header{}
	h.Set("ce-specversion", "1.0")
	h.Set("ce-id", "1")
	h.Set("ce-source", "/s")
	h.Set("ce-type", "t")
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// TestBinaryMatchesSDK: for binary mode 1.0, decodeBinaryV1 answers as the
// SDK's binding and json.Marshal did, to the byte, refusals included.
func TestBinaryMatchesSDK(t *testing.T) {
	raw := func(h http.Header, k, v string) http.Header { h[k] = append(h[k], v); return h }
	for _, tc := range []struct {
		name string
		h    http.Header
		body string
	}{
		{"bench probe", binaryHeader("Content-Type", "text/plain"), strings.Repeat("x", 256)},
		{"no body", binaryHeader(), ""},
		{"no content type", binaryHeader(), "hello"},
		{"not UTF-8", binaryHeader("Content-Type", "text/plain"), "\x00\xff\xfe"},
		{"not UTF-8, JSON", binaryHeader("Content-Type", "application/json"), "\"\xff\""},
		{"escapes", binaryHeader("Content-Type", "text/plain; charset=utf-8"), "a\"b\\c\nd\re\tf\x01g<h>i&j\u2028k\u2029l\x7fé"},
		{"JSON", binaryHeader("Content-Type", "application/json"), "{ \"a\" : [1, 2],\n \"h\": \"<&>\u2028\" }"},
		{"JSON, capitals", binaryHeader("Content-Type", "Application/JSON; charset=utf-8"), `{"a":1}`},
		{"text/json", binaryHeader("Content-Type", "text/json"), `[1, 2]`},
		{"JSON that is not", binaryHeader("Content-Type", "application/json"), `{"a":1} x`},
		{"bad media type", binaryHeader("Content-Type", "text/"), "x"},
		{"media type blank", binaryHeader("Content-Type", "  "), "x"},
		{"media type spaces", binaryHeader("Content-Type", " text/plain "), "x"},
		{"all attributes", binaryHeader("ce-subject", "sub<j>", "ce-time", "2024-01-02T03:04:05.123456789+02:00", "ce-dataschema", "https://example.com/s?q=1&r=<2>", "Content-Type", "text/plain"), "x"},
		{"time without nanoseconds", binaryHeader("ce-time", "2024-01-02T03:04:05Z"), ""},
		{"bad time", binaryHeader("ce-time", "yesterday"), ""},
		{"relative dataschema", binaryHeader("ce-dataschema", "/s"), ""},
		{"bad dataschema", binaryHeader("ce-dataschema", "%zz"), ""},
		{"blank subject", binaryHeader("ce-subject", "   "), ""},
		{"padded id and type", binaryHeader("ce-id", "  7 ", "ce-type", " t "), ""},
		{"blank id", binaryHeader("ce-id", "  "), ""},
		{"no id", func() http.Header { h := binaryHeader(); h.Del("ce-id"); return h }(), ""},
		{"no type", func() http.Header { h := binaryHeader(); h.Del("ce-type"); return h }(), ""},
		{"no source", func() http.Header { h := binaryHeader(); h.Del("ce-source"); return h }(), ""},
		{"bad source", binaryHeader("ce-source", "%zz"), ""},
		{"source to normalise", binaryHeader("ce-source", "HTTPS://Example.com/a b/é?x=<1>#f"), ""},
		{"id not UTF-8", binaryHeader("ce-id", "\xfa"), ""},
		{"id with U+2028", binaryHeader("ce-id", "a\u2028b"), ""},
		{"extensions", binaryHeader("ce-traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "ce-zz", "<v>", "ce-Ab1", "x"), "x"},
		{"extension with a dash", binaryHeader("ce-foo-bar", "v"), ""},
		{"extension over an attribute", binaryHeader("ce-datacontenttype", "text/plain"), ""},
		{"reserved extension", binaryHeader("ce-weftseq", "7"), ""},
		{"empty extension", binaryHeader("ce-e", ""), ""},
		{"two values", raw(binaryHeader(), "Ce-Id", "2"), ""},
		{"key not canonical", raw(binaryHeader(), "ce-id", "2"), ""},
		{"key not canonical, extension", raw(binaryHeader(), "ce-ext", "2"), ""},
		{"other headers", binaryHeader("User-Agent", "x", "Accept", "*/*", "Content-Length", "1"), "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !sameAsSDK(t, tc.h, []byte(tc.body), true) {
				t.Fatal("decodeBinaryV1 did not take binary mode 1.0")
			}
		})
	}
	// The rest stays with the SDK.
	for _, h := range []http.Header{
		binaryHeader("ce-specversion", "0.3"),
		binaryHeader("ce-specversion", "1.0 "),
		binaryHeader("Content-Type", "application/cloudevents+json"),
		binaryHeader("Content-Type", "application/cloudevents-batch+json"),
		{"Content-Type": {"text/plain"}},
	} {
		if _, ok, _ := decodeBinaryV1(h, []byte("x")); ok {
			t.Errorf("decodeBinaryV1 took %q", h)
		}
	}
}

// FuzzBinaryMatchesSDK is the differential fuzz target of decodeBinaryV1:
// for any attributes, content type, body and one more header of any name,
// it answers as the SDK's binding and json.Marshal.
func FuzzBinaryMatchesSDK(f *testing.F) {
	f.Add("text/plain", "1", "/s", "t", "", "", "", "Ce-Ext", "v", []byte("hello"))
	f.Add("application/json", " 2", "https://example.com/x?a=<b>", "a.b", "sub", "2024-01-02T03:04:05.5Z", "https://x/y", "ce-traceparent", "00-1", []byte("{\"a\": [1,\n2], \"b\":\"<\u2028>\"}"))
	f.Add("", "\xfa", "%zz", "", " ", "x", "/rel", "Ce-Weftseq", "1", []byte("\x00\xff"))
	f.Add("Application/JSON; charset=utf-8", "3", "urn:x", "t", "", "", "", "Content-Type", "text/plain", []byte(`"a&b"`))
	f.Add("text/", "4", "/s", "t", "", "", "", "Ce-Specversion", "0.3", []byte("x"))
	f.Fuzz(func(t *testing.T, ct, id, source, typ, subject, tm, schema, key, val string, body []byte) {
		h := binaryHeader("Content-Type", ct, "ce-id", id, "ce-source", source, "ce-type", typ)
		for k, v := range map[string]string{"ce-subject": subject, "ce-time": tm, "ce-dataschema": schema} {
			if v != "" {
				h.Set(k, v)
			}
		}
		if strings.EqualFold(key, "ce-") {
			return // DecodeBytes refuses it before either decoder (TestDecode)
		}
		h[key] = append(h[key], val)
		sameAsSDK(t, h, body, false)
	})
}

// BenchmarkDecodeBinary decodes the event harness's probe (bench/events: a
// 256-byte text/plain body in binary mode) with decodeBinaryV1 and through
// the SDK's binding and json.Marshal, as DecodeBytes did before.
func BenchmarkDecodeBinary(b *testing.B) {
	h := binaryHeader("Content-Type", "text/plain", "ce-id", "12345", "ce-source", "/bench", "ce-type", "bench")
	body := []byte(strings.Repeat("x", 256))
	for _, d := range []struct {
		name   string
		decode func(http.Header, []byte) ([]Decoded, error)
	}{{"own", DecodeBytes}, {"sdk", viaSDK}} {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.decode(h, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
