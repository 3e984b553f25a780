package service

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/observe/tracing"
)

// streamKinds counts the service streams delivered at a site, by kind.
type streamKinds struct {
	mu sync.Mutex
	n  map[forward.Kind]int
}

func countStreams(s *testSite) *streamKinds {
	k := &streamKinds{n: map[forward.Kind]int{}}
	s.fs.SetDeliver(func(st *link.Stream, h *forward.Header) {
		k.mu.Lock()
		k.n[h.Kind]++
		k.mu.Unlock()
		s.serve(st, h)
	})
	return k
}

func (k *streamKinds) get(kind forward.Kind) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n[kind]
}

// webAB is sites a and b linked, a connector for "web" at b to a backend
// and an HTTP listener for it at a; old marks b as a site from before
// framed streams.
func webAB(t *testing.T, old bool) (url string, be *backend, kinds *streamKinds) {
	w := newWorld(t, "a", "b")
	w.link("a", "b", 1)
	b := w.site("b")
	b.old.Store(old)
	kinds = countStreams(b)
	be = startBackend(t, "at-b")
	w.connector("b", httpConnector("web", "web", be.addr))
	return "http://" + w.listener("a", httpListener("web", "")), be, kinds
}

// Requests one after another share one framed stream.
func TestFramedStreamsAreReused(t *testing.T) {
	url, _, kinds := webAB(t, false)
	client := newClient(t)
	for i := range 20 {
		if code, body, err := get(client, url); err != nil || code != 200 || body != "at-b" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	if n, old := kinds.get(forward.KindHTTPFrame), kinds.get(forward.KindHTTP); n != 1 || old != 0 {
		t.Errorf("20 requests in a row opened %d framed and %d HTTP/1.1 streams, want 1 and 0", n, old)
	}
}

// A site that does not know framed streams refuses the first one; the
// ingress then uses HTTP/1.1 streams on that path, without failing a
// request.
func TestFramedFallsBackToHTTP1(t *testing.T) {
	url, _, kinds := webAB(t, true)
	client := newClient(t)
	for i := range 5 {
		if code, body, err := get(client, url); err != nil || code != 200 || body != "at-b" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	if n, old := kinds.get(forward.KindHTTPFrame), kinds.get(forward.KindHTTP); n != 1 || old != 1 {
		t.Errorf("framed streams tried %d times, HTTP/1.1 streams opened %d; want 1 and 1", n, old)
	}
}

// Bodies both ways larger than a frame, streamed with unknown length, and
// the answer's trailers; the stream is reused after each. (Request
// trailers do not reach a target through weft: httputil.ReverseProxy
// sends a copy of the request's trailer map, made before the client's
// trailers arrive.)
func TestFramedBodiesAndTrailers(t *testing.T) {
	url, be, kinds := webAB(t, false)
	be.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		b, err := io.ReadAll(r.Body) // HTTP/1.1: all of it before answering
		if err != nil {
			t.Errorf("backend: reading the request: %v", err)
		}
		w.Write(b)
		w.Header().Set("X-Sum", strings.Repeat("n", len(b)%7))
	})
	client := newClient(t)
	body := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16) // 300 KiB: several data frames
	for i := range 3 {
		pr, pw := io.Pipe()
		go func() {
			pw.Write(body[:1000])
			pw.Write(body[1000:])
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, url, pr)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("request %d: %d bytes back (%v), want %d", i, len(got), err, len(body))
		}
		if want := strings.Repeat("n", len(body)%7); resp.Trailer.Get("X-Sum") != want {
			t.Errorf("request %d: trailer %q, want %q", i, resp.Trailer.Get("X-Sum"), want)
		}
	}
	if n := kinds.get(forward.KindHTTPFrame); n != 1 {
		t.Errorf("3 requests with bodies opened %d framed streams, want 1", n)
	}
}

// An answer that ends before its request (the target does not read the
// body) leaves the stream unusable: the next request gets a new one and
// every request is answered.
func TestFramedAnswerBeforeRequestEnds(t *testing.T) {
	url, be, kinds := webAB(t, false)
	be.handle(func(w http.ResponseWriter, r *http.Request) {
		// Else net/http reads the body to its end before it answers.
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(http.StatusAccepted)
	})
	client := newClient(t)
	for i := range 3 {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, url, pr)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		pw.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
	if n := kinds.get(forward.KindHTTPFrame); n < 2 {
		t.Errorf("3 requests answered before their bodies ended shared %d framed streams; a stream must not be reused after that", n)
	}
}

// keepSpans is an in-memory exporter that keeps its spans when the
// provider shuts down (which is how the test flushes them).
type keepSpans struct{ *tracetest.InMemoryExporter }

func (keepSpans) Shutdown(context.Context) error { return nil }

// Each request's egress span at b is the child of its attempt span at a:
// through the stream header for the request that opened the stream, and
// through traceparent for the next one on the same stream.
func TestFramedTraceChain(t *testing.T) {
	exp := keepSpans{tracetest.NewInMemoryExporter()}
	p, err := tracing.WithExporter(context.Background(), exp, 1, "test")
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, "a", "b")
	w.link("a", "b", 1)
	for _, n := range []string{"a", "b"} {
		w.site(n).m.cfg.Tracer = p.Tracer(n)
	}
	kinds := countStreams(w.site("b"))
	be := startBackend(t, "at-b")
	w.connector("b", httpConnector("web", "web", be.addr))
	url := "http://" + w.listener("a", httpListener("web", ""))
	client := newClient(t)
	for i := range 2 {
		if code, body, err := get(client, url); err != nil || code != 200 || body != "at-b" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := kinds.get(forward.KindHTTPFrame); n != 1 {
		t.Fatalf("%d framed streams, want 1 for both requests", n)
	}
	attempts := map[trace.SpanID]trace.TraceID{}
	var egress []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		switch s.Name {
		case "weft.attempt":
			attempts[s.SpanContext.SpanID()] = s.SpanContext.TraceID()
		case "weft.egress":
			egress = append(egress, s)
		}
	}
	if len(egress) != 2 {
		t.Fatalf("%d egress spans, want 2", len(egress))
	}
	for _, s := range egress {
		if tid, ok := attempts[s.Parent.SpanID()]; !ok || tid != s.SpanContext.TraceID() {
			t.Errorf("egress span %s has parent %s, not an attempt span of its trace", s.SpanContext.SpanID(), s.Parent.SpanID())
		}
	}
}
