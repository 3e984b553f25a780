// Package tracing is weft's OpenTelemetry tracing: the tracer provider a
// process starts when asked to sample (--trace-sample), the OTLP exporter
// configured by the standard OTEL_EXPORTER_OTLP_* variables, and the
// per-site [Tracer] the data path starts its spans with.
//
// Tracing off is the nil *Tracer: its Start returns the context unchanged
// and a span that records nothing, without allocating, so the data path
// calls it unconditionally and pays nothing when no one samples.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Attribute keys of weft's spans.
const (
	KeySite      = attribute.Key("weft.site")
	KeyAddress   = attribute.Key("weft.address")
	KeySegments  = attribute.Key("weft.segments")
	KeyCandidate = attribute.Key("weft.candidate.site")
	KeyCost      = attribute.Key("weft.candidate.cost")
	KeyReason    = attribute.Key("weft.candidate.reason")
	KeyCopy      = attribute.Key("weft.copy")
	KeyWinner    = attribute.Key("weft.copy.winner")
	KeyOutcome   = attribute.Key("weft.outcome")
	KeyStream    = attribute.Key("weft.stream")
	KeyKind      = attribute.Key("weft.stream.kind")
	KeySkipped   = attribute.Key("weft.candidates.skipped")

	// Events: weft.address is the topic or queue.
	KeyEventKind     = attribute.Key("weft.event.kind")     // topic or queue
	KeyEventDelivery = attribute.Key("weft.event.delivery") // volatile or persisted
	KeyEventID       = attribute.Key("weft.event.id")
	KeyEventSource   = attribute.Key("weft.event.source")
	KeyEventOrigin   = attribute.Key("weft.event.origin") // the site it was published at
	KeyEventFrom     = attribute.Key("weft.event.from")   // the neighbour it came from
	KeyEventNext     = attribute.Key("weft.event.next")   // the neighbours it went on to
	KeyEventSeq      = attribute.Key("weft.event.seq")    // its inbox seq at a persisted delivery
	KeySubscriber    = attribute.Key("weft.subscriber")   // sse, websocket, push subscription name, tap
	KeyAttempt       = attribute.Key("weft.delivery.attempt")
)

// Propagator is W3C Trace Context, the only format weft reads and writes,
// on HTTP requests and (as traceparent) on CloudEvents.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Provider is a process's tracer provider with its exporter.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// ErrRatio is returned for a sampling ratio outside [0, 1].
var ErrRatio = errors.New("trace sample ratio must be between 0 and 1")

// Start returns a Provider that samples root traces at ratio and follows
// the parent's decision for continued ones (a sampled client trace stays
// sampled), exporting over OTLP as OTEL_EXPORTER_OTLP_PROTOCOL (or its
// _TRACES_ form) says: "grpc", or "http/protobuf", the default the
// specification names. Endpoint, headers, TLS and timeout come from the
// other OTEL_EXPORTER_OTLP_* variables, read by the exporters themselves.
// A ratio of 0 starts nothing and returns nil: tracing is off. Export
// errors go to log, when it is not nil.
func Start(ctx context.Context, ratio float64, service string, log *slog.Logger) (*Provider, error) {
	if ratio < 0 || ratio > 1 || ratio != ratio {
		return nil, fmt.Errorf("%w: got %v", ErrRatio, ratio)
	}
	if ratio == 0 {
		return nil, nil
	}
	if log != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("tracing failed; check OTEL_EXPORTER_OTLP_ENDPOINT and that the collector runs", "err", err)
		}))
	}
	exp, err := newExporter(ctx)
	if err != nil {
		return nil, err
	}
	return WithExporter(ctx, exp, ratio, service)
}

// WithExporter is Start with the exporter given, such as an in-memory one
// in tests.
func WithExporter(ctx context.Context, exp sdktrace.SpanExporter, ratio float64, service string) (*Provider, error) {
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override service.
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil && res == nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	return &Provider{tp: tp}, nil
}

func newExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch strings.TrimSpace(proto) {
	case "grpc":
		return otlptracegrpc.New(ctx)
	case "http/protobuf", "":
		return otlptracehttp.New(ctx)
	}
	return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: use grpc or http/protobuf", proto)
}

// Shutdown flushes the spans not exported yet and stops the exporter.
// A nil Provider has nothing to do.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

// Tracer returns the tracer of site: every span it starts carries the
// site's name. A nil Provider gives the nil Tracer, tracing off.
func (p *Provider) Tracer(site string) *Tracer {
	if p == nil {
		return nil
	}
	return &Tracer{t: p.tp.Tracer("weft.dev/weft"), site: KeySite.String(site)}
}

// Tracer starts the spans of one site. The nil Tracer is tracing off.
type Tracer struct {
	t    trace.Tracer
	site attribute.KeyValue
}

// nonRecording is boxed once, so that returning it allocates nothing.
var nonRecording trace.Span = noop.Span{}

// Start starts a span named name as a child of the span in ctx (or of the
// remote span context there), with the site's name and attrs. With
// tracing off it returns ctx unchanged and a span that records nothing.
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nonRecording
	}
	return t.t.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(t.site), trace.WithAttributes(attrs...))
}

// On reports whether t records anything: callers skip building attributes
// that cost something when it does not.
func (t *Tracer) On() bool { return t != nil }

// Fail marks span as failed with err, when err is not nil.
func Fail(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

// Handler wraps an API's handler in a server span per request, named by
// the route it matched and continuing the caller's W3C trace context.
// With tracing off it returns h.
func Handler(t *Tracer, h http.Handler) http.Handler {
	if !t.On() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.Start(ctx, r.Method, trace.SpanKindServer, attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path))
		defer span.End()
		r = r.WithContext(ctx)
		h.ServeHTTP(w, r)
		if r.Pattern != "" { // set by the ServeMux that routed it
			span.SetName(r.Pattern)
		}
	})
}

// ForceFlush exports the spans ended so far, for a test that reads them.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.ForceFlush(ctx)
}
