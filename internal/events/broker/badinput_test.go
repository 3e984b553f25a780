package broker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
)

// ce are the headers of a binary-mode event.
var ce = map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}

func with(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

const structured = "application/cloudevents+json"
const batch = "application/cloudevents-batch+json"

// anEvent is a structured event whose data is the JSON value data.
func anEvent(data string) string {
	return `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":` + data + `}`
}

// TestEventAPIRefusesBadInput: publishes and subscriptions that are too
// large, too deep, of the wrong type or followed by garbage get a 4xx with
// the API's JSON error, which says what is wrong, and the site keeps
// serving.
func TestEventAPIRefusesBadInput(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil)
	a := m.site("a")
	a.persisted(t, events.Topic, "p")
	h := a.b.Handler()
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		body               string
		status             int
		code, why          string
	}{
		{"oversize binary", "POST", "/v1/topics/x", ce, strings.Repeat("x", cloudevent.DefaultMaxSize+1), 413, "EventTooLarge", "body over 1048576 bytes"},
		{"oversize batch", "POST", "/v1/topics/p", map[string]string{"Content-Type": batch}, "[" + strings.Repeat(anEvent(`"`+strings.Repeat("x", 1000)+`"`)+",", cloudevent.DefaultMaxSize/1000) + anEvent("1") + "]", 413, "EventTooLarge", "1048576"},
		{"deep structured", "POST", "/v1/topics/x", map[string]string{"Content-Type": structured}, anEvent(deep), 400, "MalformedEvent", "depth"},
		{"deep batch", "POST", "/v1/topics/p", map[string]string{"Content-Type": batch}, "[" + anEvent(deep) + "]", 400, "MalformedEvent", "depth"},
		{"deep binary JSON", "POST", "/v1/topics/x", with(ce, "Content-Type", "application/json"), deep, 400, "MalformedEvent", "not valid JSON"},
		{"no content type, no ce headers", "POST", "/v1/topics/x", nil, anEvent("1"), 400, "MalformedEvent", "neither binary mode"},
		{"text/plain, no ce headers", "POST", "/v1/topics/x", map[string]string{"Content-Type": "text/plain"}, "hello", 400, "MalformedEvent", "neither binary mode"},
		{"structured XML", "POST", "/v1/topics/x", map[string]string{"Content-Type": "application/cloudevents+xml"}, "<event/>", 415, "UnsupportedFormat", "application/cloudevents+json"},
		{"batch that is an object", "POST", "/v1/topics/x", map[string]string{"Content-Type": batch}, anEvent("1"), 400, "MalformedEvent", "not an array"},
		{"structured trailing garbage", "POST", "/v1/topics/x", map[string]string{"Content-Type": structured}, anEvent("1") + "garbage", 400, "MalformedEvent", "after top-level value"},
		{"structured, a second event", "POST", "/v1/topics/x", map[string]string{"Content-Type": structured}, anEvent("1") + anEvent("2"), 400, "MalformedEvent", "after top-level value"},
		{"batch trailing garbage", "POST", "/v1/topics/p", map[string]string{"Content-Type": batch}, "[" + anEvent("1") + "],", 400, "MalformedEvent", "after top-level value"},
		{"binary JSON trailing garbage", "POST", "/v1/topics/x", with(ce, "Content-Type", "application/json"), `{"a":1}}`, 400, "MalformedEvent", "not valid JSON"},
		{"empty structured", "POST", "/v1/topics/x", map[string]string{"Content-Type": structured}, "", 400, "MalformedEvent", ""},
		{"empty batch", "POST", "/v1/topics/x", map[string]string{"Content-Type": batch}, "[]", 400, "MalformedEvent", "empty batch"},
		{"batch over MaxBatch", "POST", "/v1/topics/x", map[string]string{"Content-Type": batch}, "[" + strings.Repeat("{},", cloudevent.MaxBatch) + "{}]", 400, "MalformedEvent", "limit 10000"},
		{"reserved extension", "POST", "/v1/topics/x", with(ce, "ce-weftseq", "1"), "x", 400, "MalformedEvent", "reserved"},
		{"bad topic name", "POST", "/v1/topics/a..b", ce, "x", 400, "BadSubject", "empty token"},
		{"wildcard in a publish", "POST", "/v1/queues/a.*", ce, "x", 400, "BadSubject", "wildcards only in subscriptions"},
		{"bad pattern", "GET", "/v1/topics/a.%3E.b/events", nil, "", 400, "BadSubject", "last token"},
		{"Last-Event-ID not a number", "GET", "/v1/topics/p/events", map[string]string{"Last-Event-ID": "abc"}, "", 400, "BadLastEventID", `"abc"`},
		{"Last-Event-ID over 64 bits", "GET", "/v1/topics/p/events", map[string]string{"Last-Event-ID": "18446744073709551616"}, "", 400, "BadLastEventID", "18446744073709551616"},
		{"lastEventId negative", "GET", "/v1/topics/p/events?lastEventId=-1", nil, "", 400, "BadLastEventID", `"-1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			var body struct{ Error apiError }
			err := json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != tc.status || w.Header().Get("Content-Type") != "application/json" || err != nil ||
				body.Error.Code != tc.code || !strings.Contains(body.Error.Message, tc.why) {
				msg := w.Body.String()
				if len(msg) > 300 {
					msg = msg[:300] + "..."
				}
				t.Errorf("answered %d %s (%v), want %d %s with %q", w.Code, msg, err, tc.status, tc.code, tc.why)
			}
		})
	}
	// Still serving: a publish is taken and a subscriber gets it.
	st := get(t, h, "/v1/topics/p/events?lastEventId=0", "192.0.2.1:1")
	defer st.close()
	r := httptest.NewRequest("POST", "/v1/topics/p", strings.NewReader("hello"))
	for k, v := range with(ce, "ce-id", "after") {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusAccepted {
		t.Fatalf("a good publish after the bad ones: %d %s", w.Code, w.Body)
	}
	waitFor(t, "the subscriber to get it", func() bool { return strings.Contains(st.rec.String(), `"id":"after"`) })
}
