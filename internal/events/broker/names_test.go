package broker

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/resource"
)

// publishTo publishes one binary-mode event with id to path through h and
// returns the answer.
func publishTo(h http.Handler, path, id string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", path, strings.NewReader(`{"n":1}`))
	for k, v := range with(ce, "ce-id", id, "Content-Type", "application/json") {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// A name is a topic or a queue, never both: /v1/events/{name} finds which,
// from a Queue configured here or the queue consumers of the network, and
// the kind's own paths refuse a name configured as the other kind.
func TestOneNamespaceForTopicsAndQueues(t *testing.T) {
	m := newMesh(t, []string{"a", "b"}, [][3]int{{1, 2, 1}})
	a, b := m.site("a"), m.site("b")
	h := a.b.Handler()

	// b consumes the queue jobs, which a has not configured.
	got := b.drain(t, events.Queue, "jobs")
	waitFor(t, "a to learn of b's consumer", func() bool { return a.b.resolve("jobs") == events.Queue })
	w := publishTo(h, "/v1/events/jobs", "q1")
	if w.Code != http.StatusAccepted || w.Header().Get("Weft-Kind") != "queue" {
		t.Fatalf("publish to jobs by name: %d %s %s", w.Code, w.Header().Get("Weft-Kind"), w.Body)
	}
	waitFor(t, "b's consumer to get the event", func() bool { return slices.Contains(got.got(), "q1") })

	// A name nobody consumes as a queue is a topic.
	if w := publishTo(h, "/v1/events/news", "t1"); w.Code != http.StatusAccepted || w.Header().Get("Weft-Kind") != "topic" {
		t.Errorf("publish to news by name: %d %s", w.Code, w.Header().Get("Weft-Kind"))
	}

	// A Queue configured here decides, and the topic path refuses it.
	q := resource.Queue{}
	q.Name = "work"
	if err := a.b.PutQueue(q); err != nil {
		t.Fatal(err)
	}
	if k := a.b.resolve("work"); k != events.Queue {
		t.Errorf("resolve(work) = %v, want the queue", k)
	}
	for _, tc := range []struct{ method, path string }{
		{"POST", "/v1/topics/work"},
		{"GET", "/v1/topics/work/events"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader("x"))
		for k, v := range ce {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), `"WrongKind"`) || !strings.Contains(w.Body.String(), "/v1/queues/work") {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, w.Code, w.Body)
		}
	}
	if found, err := a.b.DeleteQueue("work"); err != nil || !found {
		t.Fatalf("DeleteQueue: %v %v", found, err)
	}
	if k := a.b.resolve("work"); k != events.Topic {
		t.Errorf("resolve(work) after the queue was deleted = %v", k)
	}
	// Paths the event API does not serve answer in its error shape.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v2/nothing", nil))
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `"NotFound"`) {
		t.Errorf("unknown path: %d %s", w.Code, w.Body)
	}
}
