package cloudevent

import (
	"bytes"
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
		{"too large", req(strings.Repeat("x", 2000), binary), 0, ErrTooLarge, "1000 bytes"},
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
