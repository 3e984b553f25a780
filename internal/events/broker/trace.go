package broker

import (
	"context"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/extensions"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/observe/tracing"
	"weft.dev/weft/internal/siteid"
)

// Spans of the event path. An event is traced when the site it is
// published at samples it: "weft.publish" there, a child of the client's
// context (the event's own traceparent, else the request's). The event
// gets the CloudEvents distributed-tracing attributes (traceparent,
// tracestate) of that span unless it has its own, and they are never
// changed after: the extension carries the context of the event's
// creation, to every subscriber and bridge. From hop to hop an event's
// frame carries the context of the span that sent it (events.Frame.Trace,
// and store.Entry.Trace while it waits in a log), so each site it reaches
// records "weft.hop", a child of the previous site's span, without reading
// the event; and each delivery to a subscriber, a push sink or a queue
// consumer is "weft.deliver", a child of its site's hop (or publish). A
// site with tracing off passes the context on unchanged; an untraced event
// carries none and costs nothing.

// requestContext is the context a publish request continues: its W3C
// traceparent header, when tracing is on.
func (b *Broker) requestContext(r *http.Request) context.Context {
	if !b.cfg.Tracer.On() {
		return r.Context()
	}
	return tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
}

// startPublish starts the publish span of each event of evs and gives it
// the distributed-tracing attributes when it has none; it returns the
// spans, for endSpans, and the context each event's frames and log
// entry carry (zero for an event not sampled). With tracing off it returns
// nil, nil.
func (b *Broker) startPublish(ctx context.Context, kind events.Kind, subject string, evs []cloudevent.Decoded, persisted bool) ([]trace.Span, []tracectx.Context) {
	if !b.cfg.Tracer.On() {
		return nil, nil
	}
	delivery := "volatile"
	if persisted {
		delivery = "persisted"
	}
	spans, tcs := make([]trace.Span, len(evs)), make([]tracectx.Context, len(evs))
	for i := range evs {
		e := &evs[i]
		parent := ctx
		own := eventTrace(&e.Event)
		if own != nil {
			parent = tracing.Propagator.Extract(ctx, own)
		}
		sctx, span := b.cfg.Tracer.Start(parent, "weft.publish", trace.SpanKindProducer,
			tracing.KeyAddress.String(subject), tracing.KeyEventKind.String(kindName(kind)),
			tracing.KeyEventDelivery.String(delivery), tracing.KeyEventID.String(e.Event.ID()),
			tracing.KeyEventSource.String(e.Event.Source()))
		spans[i] = span
		if !span.SpanContext().IsSampled() {
			continue
		}
		tcs[i], _ = tracectx.FromSpan(sctx)
		if own == nil {
			c := propagation.MapCarrier{}
			tracing.Propagator.Inject(sctx, c)
			kv := []string{cloudevent.TraceparentAttr, c[cloudevent.TraceparentAttr]}
			if ts := c[cloudevent.TracestateAttr]; ts != "" {
				kv = append(kv, cloudevent.TracestateAttr, ts)
			}
			e.JSON = cloudevent.AppendAttrs(nil, e.JSON, kv...)
			// The event has them now: a publisher that retries it (a
			// bridge) must not splice them in twice.
			extensions.DistributedTracingExtension{TraceParent: kv[1], TraceState: c[cloudevent.TracestateAttr]}.AddTracingAttributes(&e.Event)
		}
	}
	return spans, tcs
}

// eventTrace is the event's distributed-tracing attributes as a carrier,
// nil when it has no traceparent.
func eventTrace(e *cloudevent.Event) propagation.MapCarrier {
	d, ok := extensions.GetDistributedTracingExtension(*e)
	if !ok {
		return nil
	}
	return propagation.MapCarrier{cloudevent.TraceparentAttr: d.TraceParent, cloudevent.TracestateAttr: d.TraceState}
}

// endSpans ends spans with the outcome of what they cover.
func endSpans(spans []trace.Span, err error) {
	for _, s := range spans {
		endSpan(s, err)
	}
}

// endSpan ends span with the outcome of what it covers.
func endSpan(span trace.Span, err error) {
	tracing.Fail(span, err)
	span.End()
}

// maxAttemptEvents bounds the span events a push delivery records, one per
// failed attempt: a subscription may retry many times.
const maxAttemptEvents = 8

// attemptFailed records on a push delivery's span an attempt that failed.
func attemptFailed(span trace.Span, attempt, status int) {
	if span.IsRecording() && attempt < maxAttemptEvents {
		span.AddEvent("weft.delivery.failed", trace.WithAttributes(tracing.KeyAttempt.Int(attempt+1),
			attribute.Int("http.response.status_code", status)))
	}
}

// traceAt is tcs[i], zero when tcs is nil (tracing off).
func traceAt(tcs []tracectx.Context, i int) tracectx.Context {
	if tcs == nil {
		return tracectx.Context{}
	}
	return tcs[i]
}

// noSpan is the span of an event that is not traced here.
var noSpan = trace.SpanFromContext(context.Background())

// startHop starts the span of an event that arrived from the neighbour
// from, a child of parent, the span that sent it. It returns the span and
// the context the event goes on with: the span's, or parent unchanged when
// this site does not trace. An untraced event (zero parent) costs nothing.
func (b *Broker) startHop(parent tracectx.Context, f *events.Frame, from siteid.ID) (trace.Span, tracectx.Context) {
	if parent.IsZero() || !b.cfg.Tracer.On() {
		return noSpan, parent
	}
	delivery := "persisted"
	if f.Type == events.FrameEvent {
		delivery = "volatile"
	}
	ctx, span := b.cfg.Tracer.Start(tracectx.WithRemote(context.Background(), parent), "weft.hop", trace.SpanKindConsumer,
		tracing.KeyAddress.String(f.Subject), tracing.KeyEventKind.String(kindName(f.Kind)),
		tracing.KeyEventDelivery.String(delivery),
		tracing.KeyEventFrom.String(b.siteName(from)), tracing.KeyEventOrigin.String(b.siteName(f.Origin)))
	if !span.IsRecording() {
		return span, parent
	}
	// The key is all a hop reads of an event; only a traced one pays it.
	if source, id, err := cloudevent.Key(f.Payload); err == nil {
		span.SetAttributes(tracing.KeyEventID.String(id), tracing.KeyEventSource.String(source))
	}
	tc, _ := tracectx.FromSpan(ctx)
	return span, tc
}

// setNext records on a hop's span the neighbours the event went on to.
func (b *Broker) setNext(span trace.Span, next []siteid.ID) {
	if !span.IsRecording() || len(next) == 0 {
		return
	}
	names := make([]string, len(next))
	for i, id := range next {
		names[i] = b.siteName(id)
	}
	span.SetAttributes(tracing.KeyEventNext.StringSlice(names))
}

// siteName is a site's name as the route table has it, else its ID.
func (b *Broker) siteName(id siteid.ID) string {
	if r, ok := b.cfg.Net.Table().Route(id); ok && r.Name != "" {
		return r.Name
	}
	return id.String()
}

// tracePtr is t for a delivery: nil when zero, so that an untraced
// delivery allocates nothing.
func tracePtr(t tracectx.Context) *tracectx.Context {
	if t.IsZero() {
		return nil
	}
	c := t // escapes only here: t itself would be moved to the heap on every call
	return &c
}

// trace is the context of the span that brought d here, zero for none.
func (d *delivery) trace() tracectx.Context {
	if d.Trace == nil {
		return tracectx.Context{}
	}
	return *d.Trace
}

// startDeliver starts the span of one delivery of an event to a local
// consumer (a stream subscriber, a push sink, a tap), a child of t, the
// span of the hop or publish that brought it here. It returns ctx with the
// span, for a delivery that makes a request of its own. Without t, or with
// tracing off, there is none.
func (b *Broker) startDeliver(ctx context.Context, t tracectx.Context, subject string, kind events.Kind, subscriber string, seq uint64) (context.Context, trace.Span) {
	if t.IsZero() || !b.cfg.Tracer.On() {
		return ctx, noSpan
	}
	attrs := []attribute.KeyValue{tracing.KeyAddress.String(subject), tracing.KeyEventKind.String(kindName(kind)),
		tracing.KeySubscriber.String(subscriber)}
	if seq != 0 {
		attrs = append(attrs, tracing.KeyEventSeq.Int64(int64(seq)))
	}
	return b.cfg.Tracer.Start(tracectx.WithRemote(ctx, t), "weft.deliver", trace.SpanKindProducer, attrs...)
}
