// Package tracectx is the W3C trace context as weft's wire formats carry
// it (a stream header, an event frame, a stored event): 25 bytes, and the
// conversions to and from OpenTelemetry's span contexts. It depends on
// OpenTelemetry's API only, so that codecs can use it without the SDK and
// exporters that package tracing starts.
package tracectx

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

// Context is a W3C trace context (traceparent's fields, version 00) as
// weft's wire formats carry it: a stream header, an event frame, a stored
// event. The zero Context is no context.
type Context struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   uint8
}

// ContextSize is the bytes of a Context on the wire: trace ID, span ID,
// flags.
const ContextSize = 16 + 8 + 1

// IsZero reports whether c carries no context.
func (c Context) IsZero() bool { return c == Context{} }

// Valid reports whether c names a span: a wire format refuses a context
// with a zero trace or span ID.
func (c Context) Valid() bool { return c.TraceID != [16]byte{} && c.SpanID != [8]byte{} }

// Append appends c's ContextSize bytes to b.
func (c Context) Append(b []byte) []byte {
	b = append(b, c.TraceID[:]...)
	b = append(b, c.SpanID[:]...)
	return append(b, c.Flags)
}

// ReadContext is the Context in the first ContextSize bytes of b, which
// the caller has checked are there.
func ReadContext(b []byte) Context {
	var c Context
	copy(c.TraceID[:], b)
	copy(c.SpanID[:], b[16:])
	c.Flags = b[24]
	return c
}

// SpanContext is c as OpenTelemetry's remote span context.
func (c Context) SpanContext() trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: c.TraceID, SpanID: c.SpanID, TraceFlags: trace.TraceFlags(c.Flags), Remote: true,
	})
}

// FromSpan is the context of the span in ctx, or of the remote context
// there when no span records; false when there is neither.
func FromSpan(ctx context.Context) (Context, bool) {
	return FromSpanContext(trace.SpanContextFromContext(ctx))
}

// FromSpanContext is sc as a Context; false when sc is not valid.
func FromSpanContext(sc trace.SpanContext) (Context, bool) {
	if !sc.IsValid() {
		return Context{}, false
	}
	return Context{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Flags: byte(sc.TraceFlags())}, true
}

// WithRemote returns ctx carrying c as the remote parent of the spans
// started from it, ctx itself when c is zero.
func WithRemote(ctx context.Context, c Context) context.Context {
	if c.IsZero() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, c.SpanContext())
}
