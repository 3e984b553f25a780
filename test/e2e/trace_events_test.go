package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"weft.dev/weft/test/envtest"
)

// TestTraceEvents: on the line a - b - c, one event published at a with
// the client's W3C trace context in its request, to a topic subscribed to
// at c, volatile and persisted. The sites sample almost nothing
// themselves. Jaeger gets one trace continuing the client's:
// weft.publish at a, weft.hop at b and at c, each the child of the span
// before, and weft.deliver at c, the child of c's hop; the subscriber's
// event carries the traceparent of the publish span.
func TestTraceEvents(t *testing.T) {
	j, a, _, c := tracedLine(t)
	a.weft("topic", "create", "stored", "--delivery", "persisted")
	for i, topic := range []string{"passing", "stored"} {
		t.Run(topic, func(t *testing.T) {
			path := "/v1/topics/" + topic
			sub := c.subscribeSSE(t, path)
			probe(t, a, path, sub)

			traceID, clientSpan := fmt.Sprintf("4bf92f3577b34da6a3ce929d0e0e47%02d", 36+i), "00f067aa0ba902b7"
			body := `{"specversion":"1.0","id":"traced","source":"/client","type":"traced","data":{}}`
			req, _ := http.NewRequest("POST", a.eventsURL()+path, bytes.NewReader([]byte(body)))
			req.Header.Set("Content-Type", "application/cloudevents+json")
			req.Header.Set("Traceparent", "00-"+traceID+"-"+clientSpan+"-01")
			resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("publish: %s", resp.Status)
			}
			waitFor(t, 15*time.Second, "the traced event at c", func() bool { return sub.count("traced") == 1 })

			var delivered string
			sub.mu.Lock()
			for _, e := range sub.evs {
				if e.Type == "traced" {
					delivered = e.Traceparent
				}
			}
			sub.mu.Unlock()
			delivery := map[string]string{"passing": "volatile", "stored": "persisted"}[topic]
			waitTrace(t, func(ctx context.Context) ([]envtest.Span, error) { return j.Trace(ctx, traceID) }, func(s spanSet) error {
				pub, err := s.one("weft.publish", "a", "weft.address", topic, "weft.event.id", "traced", "weft.event.delivery", delivery)
				if err != nil {
					return err
				}
				if pub.Parent() != clientSpan {
					return fmt.Errorf("publish parent %q, want the client's span %s", pub.Parent(), clientSpan)
				}
				hopB, err := s.one("weft.hop", "b", "weft.event.from", "a", "weft.event.id", "traced")
				if err != nil {
					return err
				}
				hopC, err := s.one("weft.hop", "c", "weft.event.from", "b")
				if err != nil {
					return err
				}
				deliver, err := s.one("weft.deliver", "c", "weft.subscriber", "sse")
				if err != nil {
					return err
				}
				for _, e := range []error{childOf(hopB, pub), childOf(hopC, hopB), childOf(deliver, hopC)} {
					if e != nil {
						return e
					}
				}
				if want := "00-" + traceID + "-" + pub.SpanID + "-01"; delivered != want {
					return fmt.Errorf("the delivered event's traceparent is %q, want the publish span's %s", delivered, want)
				}
				return nil
			})
		})
	}
}
