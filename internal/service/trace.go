package service

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/observe/tracing"
	"weft.dev/weft/internal/routing"
)

// Spans of the data path. The ingress records one span per client
// connection or request ("weft.ingress") and one per copy sent to a
// candidate ("weft.attempt": which site, at what cost, and why this one);
// transit sites record "weft.transit" (internal/forward); the connector
// site records "weft.egress" and the call to the target, "weft.target".
// Every span is a no-op when the site does not trace.

// startIngress starts the request's ingress span, continuing the
// client's W3C trace context when it sent one, and returns r in it; the
// span is nil when the site does not trace.
func (in *ingress) startIngress(r *http.Request) (*http.Request, trace.Span) {
	tr := in.m.cfg.Tracer
	if !tr.On() {
		return r, nil
	}
	ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := tr.Start(ctx, "weft.ingress", trace.SpanKindServer,
		tracing.KeyAddress.String(in.addr.name), tracing.KeyKind.String("http"),
		attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path))
	return r.WithContext(ctx), span
}

// startAttempt starts the span of one copy of a request, a child of the
// ingress span in ctx, and returns the context to send the copy with.
// reason says why this candidate: the balancer's best, a retry after a
// failure, an overflow past a saturated one, or the hedge's backup;
// skipped which candidates the balancer passed over, and why.
func (m *Manager) startAttempt(ctx context.Context, addr string, c routing.Candidate, label, reason string, skipped []string) (context.Context, trace.Span) {
	if !m.cfg.Tracer.On() {
		return ctx, trace.SpanFromContext(ctx)
	}
	attrs := []attribute.KeyValue{
		tracing.KeyAddress.String(addr), tracing.KeyCandidate.String(c.SiteName),
		tracing.KeyCost.Int64(int64(c.Cost)), tracing.KeyReason.String(reason),
		tracing.KeySegments.StringSlice(forward.SegmentNames(c.Path)),
	}
	if label != "" {
		attrs = append(attrs, tracing.KeyCopy.String(label))
	}
	if len(skipped) > 0 {
		attrs = append(attrs, tracing.KeySkipped.StringSlice(skipped))
	}
	return m.cfg.Tracer.Start(ctx, "weft.attempt", trace.SpanKindClient, attrs...)
}

// injectTrace writes the span context of ctx into h as traceparent, so
// that the next hop (a connector site, a target) continues the trace.
func injectTrace(ctx context.Context, h http.Header) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		tracing.Propagator.Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// attemptReason says why launch chose a candidate for copy n.
func attemptReason(n int, backup bool, prev *attempt) string {
	switch {
	case backup:
		return "hedge"
	case n == 1:
		return "best"
	case prev != nil && prev.v == verdictOverload:
		return "overflow"
	}
	return "retry"
}

// PolicyHider is what a Network may also implement: the names of the
// sites that serve address but whose connectors the address policy keeps
// from this site's clients, left out of the route table. A traced
// request's spans name them as skipped for "policy".
type PolicyHider interface {
	PolicyHidden(address string) []string
}

// policySkips appends to skips, as "site:policy", the sites net's address
// policy hides for addr, up to maxSkips in all.
func policySkips(net Network, addr string, skips []string) []string {
	h, ok := net.(PolicyHider)
	if !ok {
		return skips
	}
	for _, name := range h.PolicyHidden(addr) {
		if len(skips) >= maxSkips {
			break
		}
		skips = append(skips, name+":policy")
	}
	return skips
}

// markSkipped records on the ingress span why the balancer found no
// candidate left: each one it passed over, and why.
func markSkipped(ctx context.Context, skipped []string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() && len(skipped) > 0 {
		span.SetAttributes(tracing.KeySkipped.StringSlice(skipped))
	}
}

// markWinner records on the ingress span which copy's answer the client got.
func markWinner(ctx context.Context, a *attempt) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	label := a.label
	if label == "" {
		label = "only"
	}
	span.SetAttributes(tracing.KeyWinner.String(label), tracing.KeyCandidate.String(a.cand.SiteName),
		attribute.Int("weft.copies", a.n))
}

// endAttempt ends a copy's span with how it went.
func endAttempt(span trace.Span, a *attempt) {
	if span.IsRecording() {
		span.SetAttributes(tracing.KeyOutcome.String(a.v.String()))
		if a.resp != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", a.resp.StatusCode))
		}
		if a.v == verdictFailed {
			tracing.Fail(span, a.failure())
		}
	}
	span.End()
}

// hopContext is the context a stream delivered here continues: its
// header's trace context, if it carries one.
func (m *Manager) hopContext(h *forward.Header) context.Context {
	return tracectx.WithRemote(m.life.ctx, h.Trace)
}

// startHop starts a span at the connector site, only for a traced stream
// or request: a site never starts a trace for work another site began.
// attrs are asked for only then: built per request, they were a heap
// allocation of every untraced one.
func (m *Manager) startHop(ctx context.Context, name string, kind trace.SpanKind, attrs func() []attribute.KeyValue) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return m.cfg.Tracer.Start(ctx, name, kind, attrs()...)
}

// egressContext is the parent of a request's egress span: the stream's
// hop (the transit span before it) for the request that opened the
// stream, else the request's own traceparent, since a pooled stream
// carries requests of other traces too.
// first is the stream header's trace context for the stream's first
// request, zero for the others.
func (m *Manager) egressContext(first forward.TraceContext, r *http.Request) context.Context {
	if !m.cfg.Tracer.On() {
		return r.Context()
	}
	ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	if t := first; !t.IsZero() && t.TraceID == [16]byte(trace.SpanContextFromContext(ctx).TraceID()) {
		return tracectx.WithRemote(r.Context(), t)
	}
	return ctx
}
