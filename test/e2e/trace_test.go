package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/test/envtest"
)

// traceTo points the sites started after it at j: OTLP over gRPC or
// HTTP as proto says, spans sent within 50 ms of their end.
func traceTo(t *testing.T, j *envtest.Jaeger, proto string) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
	if proto == "grpc" {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+j.OTLPGRPC)
		return
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", j.OTLPHTTP)
}

// spanSet indexes a trace's spans for checks of its shape.
type spanSet []envtest.Span

// one returns the only span named op at site with the tags given (key,
// value pairs), or an error saying what is missing.
func (s spanSet) one(op, site string, tags ...string) (envtest.Span, error) {
	var found []envtest.Span
next:
	for _, sp := range s {
		if sp.OperationName != op || sp.Tag("weft.site") != site {
			continue
		}
		for i := 0; i+1 < len(tags); i += 2 {
			if sp.Tag(tags[i]) != tags[i+1] {
				continue next
			}
		}
		found = append(found, sp)
	}
	if len(found) != 1 {
		return envtest.Span{}, fmt.Errorf("%d spans %s at %s with %v, want 1", len(found), op, site, tags)
	}
	return found[0], nil
}

// childOf checks that child's parent is parent.
func childOf(child, parent envtest.Span) error {
	if child.Parent() != parent.SpanID {
		return fmt.Errorf("%s at %s has parent %s, want %s at %s (%s)", child.OperationName, child.Tag("weft.site"), child.Parent(), parent.OperationName, parent.Tag("weft.site"), parent.SpanID)
	}
	return nil
}

func (s spanSet) String() string {
	var b strings.Builder
	for _, sp := range s {
		fmt.Fprintf(&b, "\n  %s %s at %s parent %s copy=%s candidate=%s", sp.SpanID, sp.OperationName, sp.Tag("weft.site"), sp.Parent(), sp.Tag("weft.copy"), sp.Tag("weft.candidate.site"))
	}
	return b.String()
}

// tracedLine starts Jaeger and the line a - b - c, each site sampling
// almost nothing itself, so that what is traced is what a client sampled;
// a and c export over OTLP/gRPC, b over OTLP/HTTP.
func tracedLine(t *testing.T) (j *envtest.Jaeger, a, b, c *site) {
	t.Helper()
	j = envtest.StartJaeger(t)
	sample := []string{"--trace-sample", "0.0001"}
	traceTo(t, j, "grpc")
	a = startSite(t, "a", sample...)
	traceTo(t, j, "http/protobuf")
	b = startSite(t, "b", sample...)
	traceTo(t, j, "grpc")
	c = startSite(t, "c", sample...)
	a.linkTo(b)
	b.linkTo(c)
	return j, a, b, c
}

// waitTrace polls Jaeger until check accepts the spans it holds.
func waitTrace(t *testing.T, get func(context.Context) ([]envtest.Span, error), check func(spanSet) error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		spans, err := get(ctx)
		cancel()
		if err == nil {
			if err = check(spans); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace not as expected after 30s: %v; spans:%v", err, spanSet(spans))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTraceHTTPHedge: one request, with the client's W3C trace context,
// through the line a - b - c, hedged: the primary copy to b's instance,
// which holds it, the backup through b to c's, which answers. The sites
// sample almost nothing themselves, so the spans are there because the
// client sampled its trace. Jaeger gets one trace, continuing the
// client's, with spans of all three sites in the shape of the path; a and
// c export over OTLP/gRPC, b over OTLP/HTTP.
func TestTraceHTTPHedge(t *testing.T) {
	j, a, b, c := tracedLine(t)
	held, fast := startBackend(t, "held"), startBackend(t, "fast")
	entered := make(chan struct{})
	held.handle(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done(): // the backup won
		case <-time.After(10 * time.Second):
		}
	})
	fast.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, "fast:"+r.Header.Get("Weft-Copy"))
	})
	b.weft("connector", "create", "web", "--target", held.addr, "--protocol", "http")
	c.weft("connector", "create", "web", "--target", fast.addr, "--protocol", "http")
	url := a.listenHTTP("web", "--hedge", "always")
	waitServed(t, a, "web", "b", "c")

	const traceID, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("GET", url+"/x", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "fast:backup" {
		t.Fatalf("answer %q, want the backup copy's from c", body)
	}

	waitTrace(t, func(ctx context.Context) ([]envtest.Span, error) { return j.Trace(ctx, traceID) }, func(s spanSet) error {
		in, err := s.one("weft.ingress", "a")
		if err != nil {
			return err
		}
		if in.Parent() != clientSpan {
			return fmt.Errorf("ingress parent %q, want the client's span %s", in.Parent(), clientSpan)
		}
		if w := in.Tag("weft.copy.winner"); w != "backup" {
			return fmt.Errorf("ingress says the winner is %q, want backup", w)
		}
		primary, err := s.one("weft.attempt", "a", "weft.copy", "primary", "weft.candidate.site", "b")
		if err != nil {
			return err
		}
		backup, err := s.one("weft.attempt", "a", "weft.copy", "backup", "weft.candidate.site", "c", "weft.candidate.reason", "hedge")
		if err != nil {
			return err
		}
		egressB, err := s.one("weft.egress", "b")
		if err != nil {
			return err
		}
		transitB, err := s.one("weft.transit", "b")
		if err != nil {
			return err
		}
		egressC, err := s.one("weft.egress", "c")
		if err != nil {
			return err
		}
		targetB, err := s.one("weft.target", "b")
		if err != nil {
			return err
		}
		targetC, err := s.one("weft.target", "c")
		if err != nil {
			return err
		}
		return errors.Join(childOf(primary, in), childOf(backup, in),
			childOf(egressB, primary), childOf(targetB, egressB),
			childOf(transitB, backup), childOf(egressC, transitB), childOf(targetC, egressC))
	})
}

// TestTraceTCP: a TCP connection through a - b - c is one trace started
// at a (sampling everything), with a transit span at b and the egress and
// target dial at c.
func TestTraceTCP(t *testing.T) {
	j := envtest.StartJaeger(t)
	traceTo(t, j, "http/protobuf")
	a := startSite(t, "a", "--trace-sample", "1")
	b := startSite(t, "b", "--trace-sample", "1")
	c := startSite(t, "c", "--trace-sample", "1")
	a.linkTo(b)
	b.linkTo(c)
	c.weft("connector", "create", "echo", "--target", echoServer(t, "at-c"))
	addr := a.listen("echo")
	waitServed(t, a, "echo", "c")
	if line, err := greeting(addr); err != nil || line != "at-c" {
		t.Fatalf("greeting %q, %v", line, err)
	}

	waitTrace(t, func(ctx context.Context) ([]envtest.Span, error) {
		traces, err := j.Traces(ctx, "weft")
		for _, tr := range traces {
			if _, err := spanSet(tr).one("weft.ingress", "a", "weft.stream.kind", "tcp"); err == nil {
				return tr, nil
			}
		}
		return nil, err
	}, func(s spanSet) error {
		in, err := s.one("weft.ingress", "a", "weft.stream.kind", "tcp")
		if err != nil {
			return err
		}
		if in.Parent() != "" {
			return fmt.Errorf("tcp ingress has parent %s, want a root", in.Parent())
		}
		att, err := s.one("weft.attempt", "a", "weft.candidate.site", "c", "weft.candidate.reason", "best")
		if err != nil {
			return err
		}
		transit, err := s.one("weft.transit", "b")
		if err != nil {
			return err
		}
		egress, err := s.one("weft.egress", "c")
		if err != nil {
			return err
		}
		target, err := s.one("weft.target", "c")
		if err != nil {
			return err
		}
		return errors.Join(childOf(att, in), childOf(transit, att), childOf(egress, transit), childOf(target, egress))
	})
}

// TestLogFields: a traced site with --log-format json writes only JSON
// lines; every line of the site names it, and a data-path line (a client
// connection to an address no one serves) names the address, the stream
// and the connection's trace ID. Spans go to a sink that takes anything.
func TestLogFields(t *testing.T) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer sink.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL)
	a := startSite(t, "a", "--log-format", "json", "--trace-sample", "1")
	addr := a.listen("nowhere")
	if _, err := greeting(addr); err == nil {
		t.Fatal("a connection to an address with no connector was served")
	}
	var line map[string]any
	waitFor(t, 5*time.Second, "the data-path log line", func() bool {
		for _, l := range strings.Split(strings.TrimSpace(a.log.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("not a JSON log line: %q", l)
			}
			if m["msg"] != "weft site starting" && m["site"] != "a" {
				t.Fatalf("line without site=a: %q", l)
			}
			if strings.HasPrefix(fmt.Sprint(m["msg"]), "no connector for the address") {
				line = m
			}
		}
		return line != nil
	})
	if line["address"] != "nowhere" {
		t.Errorf("address = %v, want nowhere", line["address"])
	}
	if s, _ := line["stream"].(string); !strings.HasPrefix(s, "127.0.0.1:") {
		t.Errorf("stream = %v, want the client's address", line["stream"])
	}
	if id, _ := line["trace_id"].(string); len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Errorf("trace_id = %v, want 32 hex digits", line["trace_id"])
	}
}
