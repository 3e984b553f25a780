package tracing

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestStartOff(t *testing.T) {
	p, err := Start(context.Background(), 0, "weft", nil)
	if p != nil || err != nil {
		t.Fatalf("ratio 0: %v, %v; want no provider", p, err)
	}
	if tr := p.Tracer("a"); tr.On() {
		t.Fatal("nil provider gave a tracer that is on")
	}
	for _, r := range []float64{-0.1, 1.5} {
		if _, err := Start(context.Background(), r, "weft", nil); !errors.Is(err, ErrRatio) {
			t.Errorf("ratio %v: %v", r, err)
		}
	}
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
	if _, err := Start(context.Background(), 1, "weft", nil); err == nil {
		t.Error("unknown protocol accepted")
	}
}

// The data path calls Start on every connection and request: off, it must
// not allocate.
func TestNilTracerFree(t *testing.T) {
	var tr *Tracer
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		c, span := tr.Start(ctx, "x", trace.SpanKindServer)
		span.End()
		if c != ctx {
			t.Fatal("context changed")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per span with tracing off", allocs)
	}
}

// A sampled remote parent is continued even when the site samples nothing
// of its own; an unsampled one is not recorded.
func TestParentBased(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	p, err := WithExporter(context.Background(), exp, 0.0000001, "weft")
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Tracer("a")
	for _, sampled := range []bool{true, false} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: [16]byte{1}, SpanID: [8]byte{2}, Remote: true})
		if sampled {
			sc = sc.WithTraceFlags(trace.FlagsSampled)
		}
		_, span := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), sc), "hop", trace.SpanKindServer)
		if span.IsRecording() != sampled {
			t.Errorf("parent sampled=%v: recording=%v", sampled, span.IsRecording())
		}
		span.End()
	}
	defer p.Shutdown(context.Background())
	if err := p.tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Parent.SpanID() != [8]byte{2} {
		t.Fatalf("exported %d spans, want the continued one", len(spans))
	}
	var site string
	for _, a := range spans[0].Attributes {
		if a.Key == KeySite {
			site = a.Value.AsString()
		}
	}
	if site != "a" {
		t.Errorf("span site %q, want a", site)
	}
}

// An API call is a server span named by its route, continuing the
// caller's trace.
func TestHandler(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	p, err := WithExporter(context.Background(), exp, 1, "weft-controller")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/projects/{name}", func(http.ResponseWriter, *http.Request) {})
	req := httptest.NewRequest("GET", "/v1/projects/shop", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	Handler(p.Tracer("controller"), mux).ServeHTTP(httptest.NewRecorder(), req)
	if err := p.tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "GET /v1/projects/{name}" || spans[0].Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("spans %+v", spans)
	}
	if h := http.NotFoundHandler(); Handler(nil, h) == nil {
		t.Fatal("tracing off lost the handler")
	}
}
