package envtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// JaegerVersion is the Jaeger release whose v2 binary (an OpenTelemetry
// Collector distribution) the tracing tests run; tools/jaeger builds it.
const JaegerVersion = "v1.76.0"

// Jaeger is a running Jaeger v2 with in-memory storage: OTLP in, the
// query API out.
type Jaeger struct {
	OTLPGRPC string // host:port of the OTLP/gRPC receiver
	OTLPHTTP string // base URL of the OTLP/HTTP receiver
	QueryURL string // base URL of the query API (/api/traces)
}

// JaegerPath returns where the jaeger binary is expected: $WEFT_JAEGER,
// else the cache that .ci/install-jaeger.sh fills.
func JaegerPath() string {
	if p := os.Getenv("WEFT_JAEGER"); p != "" {
		return p
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "weft", "jaeger-"+JaegerVersion)
}

// jaegerConfig keeps only what the tests use: the OTLP receiver, memory
// storage and the query API, each on the loopback port given, and no
// telemetry listener of Jaeger's own (its default port is fixed).
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// StartJaeger starts Jaeger on free loopback ports and waits until its
// query API answers.
func StartJaeger(t testing.TB) *Jaeger {
	t.Helper()
	bin := need(t, "jaeger "+JaegerVersion+" (run .ci/install-jaeger.sh)", JaegerPath())
	dir := tempDir(t, "jaeger")
	var j *Jaeger
	hc := &http.Client{}
	onFreePorts(t, func() bool {
		query, queryGRPC, otlpGRPC, otlpHTTP := loopback(freePort(t)), loopback(freePort(t)), loopback(freePort(t)), loopback(freePort(t))
		cfg := writeFile(t, dir, "config.yaml", fmt.Sprintf(jaegerConfig, query, queryGRPC, otlpGRPC, otlpHTTP))
		os.Remove(filepath.Join(dir, "jaeger.log")) // an earlier try's
		p := start(t, "jaeger", filepath.Join(dir, "jaeger.log"), nil, bin, "--config", cfg)
		t.Cleanup(p.stop)
		j = &Jaeger{OTLPGRPC: otlpGRPC, OTLPHTTP: "http://" + otlpHTTP, QueryURL: "http://" + query}
		if !p.waitReady(t, 60*time.Second, func(ctx context.Context) error {
			return httpOK(ctx, hc, j.QueryURL+"/api/services")
		}) {
			return false
		}
		// The OTLP receiver starts with the pipeline, not with the query API.
		return p.waitReady(t, 30*time.Second, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, "POST", j.OTLPHTTP+"/v1/traces", nil)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		})
	})
	return j
}

// Span is a span as Jaeger's query API returns it.
type Span struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// Parent is the span's CHILD_OF reference, "" for a root.
func (s Span) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// Tag is the value of the span's tag key as text, "" without it.
func (s Span) Tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// Trace returns the spans Jaeger holds of trace id (hex), none when it
// holds no such trace yet.
func (j *Jaeger) Trace(ctx context.Context, id string) ([]Span, error) {
	traces, err := j.query(ctx, "/api/traces/"+url.PathEscape(id))
	if len(traces) == 0 {
		return nil, err
	}
	return traces[0], err
}

// Traces returns the spans of each trace of service Jaeger holds.
func (j *Jaeger) Traces(ctx context.Context, service string) ([][]Span, error) {
	return j.query(ctx, "/api/traces?limit=1000&lookback=1h&service="+url.QueryEscape(service))
}

func (j *Jaeger) query(ctx context.Context, path string) ([][]Span, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", j.QueryURL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger: %s", resp.Status)
	}
	var body struct {
		Data []struct {
			Spans []Span `json:"spans"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := make([][]Span, len(body.Data))
	for i, t := range body.Data {
		out[i] = t.Spans
	}
	return out, nil
}
