package observe

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Data-path log lines name what they are about through their context:
// the address and stream that WithLogAttrs put there, and the trace ID of
// the span there, so that a line and its trace can be found from each
// other. Callers log with the *Context methods (WarnContext, ...).

type logAttrsKey struct{}

// WithLogAttrs returns ctx whose log lines carry attrs too.
func WithLogAttrs(ctx context.Context, attrs ...slog.Attr) context.Context {
	if prev, ok := ctx.Value(logAttrsKey{}).([]slog.Attr); ok {
		attrs = append(prev[:len(prev):len(prev)], attrs...)
	}
	return context.WithValue(ctx, logAttrsKey{}, attrs)
}

// contextHandler adds the attributes of a line's context.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if attrs, ok := ctx.Value(logAttrsKey{}).([]slog.Attr); ok {
		r.AddAttrs(attrs...)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
