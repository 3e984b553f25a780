package forward

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/observe/tracing"
	"weft.dev/weft/internal/siteid"
)

// transitSpan starts the span of a transit hop for h, a child of the span
// that opened the stream; with no trace context on the stream there is
// none, so an untraced stream costs a transit site nothing.
func transitSpan(ctx context.Context, tr *tracing.Tracer, h *Header) (context.Context, trace.Span) {
	if h.Trace.IsZero() {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx = tracectx.WithRemote(ctx, h.Trace)
	if !tr.On() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return tr.Start(ctx, "weft.transit", trace.SpanKindInternal,
		tracing.KeyAddress.String(h.Address), tracing.KeyKind.String(h.Kind.String()),
		tracing.KeySegments.StringSlice(SegmentNames(h.Segments)))
}

// SegmentNames are path's site IDs as text, for a span's attribute.
func SegmentNames(path []siteid.ID) []string {
	out := make([]string, len(path))
	for i, id := range path {
		out[i] = id.String()
	}
	return out
}
