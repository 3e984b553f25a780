package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestHTTPMetrics: requests through an http listener show in the listener
// site's /metrics, counted by address, status code and method, with one
// duration observation each.
func TestHTTPMetrics(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	a.linkTo(b)
	be := startBackend(t, "at-b")
	be.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "at-b")
	})
	b.weft("connector", "create", "web", "--target", be.addr, "--protocol", "http")
	url := a.listenHTTP("web")
	waitServed(t, a, "web", "b")

	const gets, posts = 7, 3
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range gets {
		if code, body, err := get(client, url); err != nil || code != 200 || body != "at-b" {
			t.Fatalf("GET %d: %d %q %v, want 200 at-b", i, code, body, err)
		}
	}
	for i := range posts {
		resp, err := client.Post(url+"/missing", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("POST %d: %s, want 404", i, resp.Status)
		}
	}

	want := map[string]uint64{
		`code="200",method="get"`:  gets,
		`code="404",method="post"`: posts,
	}
	// The listener counts a request once its handler has returned, which
	// may be just after the client has read the answer.
	var counts, observations map[string]uint64
	waitFor(t, 10*time.Second, "the requests in a's metrics", func() bool {
		fams := scrapeMetrics(t, a)
		counts = httpSeries(t, fams["weft_http_requests_total"], func(m *dto.Metric) uint64 {
			return uint64(m.GetCounter().GetValue())
		})
		observations = httpSeries(t, fams["weft_http_request_duration_seconds"], func(m *dto.Metric) uint64 {
			return m.GetHistogram().GetSampleCount()
		})
		for k, n := range want {
			if counts[k] < n || observations[k] < n {
				return false
			}
		}
		return true
	})
	if !maps.Equal(counts, want) {
		t.Errorf("weft_http_requests_total for web = %v, want %v", counts, want)
	}
	if !maps.Equal(observations, want) {
		t.Errorf("weft_http_request_duration_seconds count for web = %v, want %v", observations, want)
	}
}

// scrapeMetrics reads s's /metrics at its admin address.
func scrapeMetrics(t *testing.T, s *site) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(s.adminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// httpSeries maps the series of an http listener family for address web,
// keyed by their code and method labels, to value(series). Any other label
// fails the test.
func httpSeries(t *testing.T, fam *dto.MetricFamily, value func(*dto.Metric) uint64) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, m := range fam.GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if len(l) != 3 || l["address"] != "web" {
			t.Fatalf("%s series with labels %v, want address web, code and method", fam.GetName(), l)
		}
		out[fmt.Sprintf("code=%q,method=%q", l["code"], l["method"])] = value(m)
	}
	return out
}
