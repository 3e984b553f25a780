package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/observe/tracing"
)

// recordOut is a stream client that keeps every event it is sent.
type recordOut struct {
	mu  sync.Mutex
	evs [][]byte
}

func (o *recordOut) send(_ uint64, event []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.evs = append(o.evs, append([]byte(nil), event...))
	return nil
}
func (o *recordOut) flush() error     { return nil }
func (o *recordOut) keepalive() error { return nil }
func (o *recordOut) name() string     { return "sse" }

func (o *recordOut) got() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.evs
}

// TestEventSpans: on the line a-b-c, an event published at a and
// subscribed to at c is one trace: weft.publish at a, weft.hop at b and at
// c, each the child of the one before, and weft.deliver at c, the child of
// c's hop; the event reaches the subscriber with the traceparent of the
// publish span. Volatile and persisted alike.
func TestEventSpans(t *testing.T) {
	for _, persisted := range []bool{false, true} {
		t.Run(fmt.Sprintf("persisted=%v", persisted), func(t *testing.T) {
			byName, out := traceLine(t, persisted, 4, "a", "b", "c")
			pub, hopB, hopC, del := byName["weft.publish@a"], byName["weft.hop@b"], byName["weft.hop@c"], byName["weft.deliver@c"]
			if pub == nil || hopB == nil || hopC == nil || del == nil {
				t.Fatalf("spans %v", keys(byName))
			}
			for _, pair := range [][2]sdktrace.ReadOnlySpan{{pub, hopB}, {hopB, hopC}, {hopC, del}} {
				parent, child := pair[0], pair[1]
				if child.Parent().SpanID() != parent.SpanContext().SpanID() || child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
					t.Errorf("%s@%s is not the child of %s@%s", child.Name(), siteOf(child), parent.Name(), siteOf(parent))
				}
			}
			if got := attr(hopB, tracing.KeyEventID); got != "0" {
				t.Errorf("b's hop names event %q, want 0", got)
			}
			if got := attr(pub, tracing.KeyEventDelivery); got != map[bool]string{false: "volatile", true: "persisted"}[persisted] {
				t.Errorf("publish span's delivery %q", got)
			}
			e, err := cloudevent.Unmarshal(out.got()[0])
			if err != nil {
				t.Fatal(err)
			}
			sc := pub.SpanContext()
			want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
			if tp := e.Extensions()[cloudevent.TraceparentAttr]; tp != want {
				t.Errorf("delivered traceparent %v, want %s", tp, want)
			}
		})
	}
}

// TestEventSpansPassUntracedSite: a site that does not trace passes the
// context on unchanged, so the next site's hop is the publish span's child.
func TestEventSpansPassUntracedSite(t *testing.T) {
	byName, _ := traceLine(t, false, 3, "a", "c")
	pub, hopC := byName["weft.publish@a"], byName["weft.hop@c"]
	if pub == nil || hopC == nil || byName["weft.deliver@c"] == nil {
		t.Fatalf("spans %v", keys(byName))
	}
	if hopC.Parent().SpanID() != pub.SpanContext().SpanID() {
		t.Errorf("c's hop has parent %v, want a's publish %v", hopC.Parent().SpanID(), pub.SpanContext().SpanID())
	}
}

// TestEventKeepsItsTraceparent: an event that comes with its own
// traceparent keeps it, and its publish span continues that trace.
func TestEventKeepsItsTraceparent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	p, err := tracing.WithExporter(context.Background(), exp, 1, "weft")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	m := newMesh(t, []string{"a"}, nil, func(cfg *Config) { cfg.Tracer = p.Tracer("a") })
	a := m.site("a")
	sub := a.subscribe(t, events.Topic, "t")
	defer a.b.unsubscribe(sub)
	out := &recordOut{}
	a.stream(t, sub, out)
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	e := event(t, "x")
	e.Event.SetExtension(cloudevent.TraceparentAttr, tp)
	if e.JSON, err = cloudevent.Marshal(&e.Event); err != nil {
		t.Fatal(err)
	}
	if err := a.b.Publish(context.Background(), events.Topic, "t", []cloudevent.Decoded{e}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event", func() bool { return len(out.got()) == 1 })
	if n := strings.Count(string(out.got()[0]), cloudevent.TraceparentAttr); n != 1 || !strings.Contains(string(out.got()[0]), tp) {
		t.Errorf("delivered %s", out.got()[0])
	}
	p.ForceFlush(context.Background())
	for _, s := range exp.GetSpans().Snapshots() {
		if s.Name() == "weft.publish" && s.Parent().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("publish span's parent %v", s.Parent())
		}
	}
}

// TestUntracedEventFree: with tracing off, and for an event not traced,
// the event path's tracing allocates nothing.
func TestUntracedEventFree(t *testing.T) {
	b := &Broker{}
	evs := []cloudevent.Decoded{event(t, "x")}
	f := &events.Frame{Type: events.FrameEvent, Kind: events.Topic, Subject: "t"}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		spans, tcs := b.startPublish(ctx, events.Topic, "t", evs, false)
		endSpans(spans, nil)
		span, tc := b.startHop(f.Trace, f, sid(1))
		span.End()
		d := delivery{Trace: tracePtr(tc)}
		_, span = b.startDeliver(ctx, d.trace(), "t", events.Topic, "sse", 0)
		endSpan(span, nil)
		if tcs != nil || d.Trace != nil {
			t.Fatal("an untraced event got a trace context")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per event with tracing off", allocs)
	}
	// A site that traces pays nothing for an event not traced elsewhere.
	p, err := tracing.WithExporter(ctx, tracetest.NewInMemoryExporter(), 1, "weft")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	b.cfg.Tracer = p.Tracer("a")
	allocs = testing.AllocsPerRun(100, func() {
		span, _ := b.startHop(tracectx.Context{}, f, sid(1))
		span.End()
		_, span = b.startDeliver(ctx, tracectx.Context{}, "t", events.Topic, "sse", 0)
		span.End()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per untraced event at a tracing site", allocs)
	}
}

// traceLine runs the line a-b-c, tracing at the sites traced, with a
// stream subscriber of the topic t at c (persisted published at a when
// persisted is set), publishes one event at a, and returns the n spans
// exported, by name@site, and the subscriber's client.
func traceLine(t *testing.T, persisted bool, n int, traced ...string) (map[string]sdktrace.ReadOnlySpan, *recordOut) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	p, err := tracing.WithExporter(context.Background(), exp, 1, "weft")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	names := []string{"a", "b", "c"}
	m := newMesh(t, names, [][3]int{{1, 2, 1}, {2, 3, 1}}, func(cfg *Config) {
		if name := names[cfg.Self[0]-1]; slices.Contains(traced, name) {
			cfg.Tracer = p.Tracer(name)
		}
	})
	if persisted {
		m.site("a").persisted(t, events.Topic, "t")
	}
	c := m.site("c")
	sub := c.subscribe(t, events.Topic, "t")
	t.Cleanup(func() { c.b.unsubscribe(sub) })
	out := &recordOut{}
	c.stream(t, sub, out)
	publish(t, m.site("a"), events.Topic, "t", 0, 1)
	waitFor(t, "the event at c", func() bool { return len(out.got()) == 1 })
	byName := map[string]sdktrace.ReadOnlySpan{}
	waitFor(t, fmt.Sprintf("%d spans", n), func() bool {
		p.ForceFlush(context.Background())
		for _, s := range exp.GetSpans().Snapshots() {
			byName[s.Name()+"@"+siteOf(s)] = s
		}
		return len(byName) >= n
	})
	return byName, out
}

func siteOf(s sdktrace.ReadOnlySpan) string { return attr(s, tracing.KeySite) }

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value.Emit()
		}
	}
	return ""
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
