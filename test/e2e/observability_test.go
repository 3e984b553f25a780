package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/yaml"
)

// The dashboard and alerting rules that deploy/observability ships.
var (
	observabilityDir = filepath.Join("..", "..", "deploy", "observability")
	dashboardFile    = filepath.Join(observabilityDir, "weft-dashboard.json")
	alertsFile       = filepath.Join(observabilityDir, "weft-alerts.yaml")
	alertTestsFile   = filepath.Join(observabilityDir, "weft-alerts_test.yaml")
)

// promtool finds promtool (Debian's prometheus package, installed by
// .ci/install-observability-deps.sh); CI must have it, elsewhere the test
// skips.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is missing: run .ci/install-observability-deps.sh")
		}
		t.Skip("promtool is missing (Debian's prometheus package; .ci/install-observability-deps.sh installs it)")
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestObservabilityAlertRules: promtool accepts the alerting rules, and
// their unit tests (site down, forged records, link down, bridge
// disconnected, error ratio) pass.
func TestObservabilityAlertRules(t *testing.T) {
	runPromtool(t, observabilityDir, "check", "rules", filepath.Base(alertsFile))
	runPromtool(t, observabilityDir, "test", "rules", filepath.Base(alertTestsFile))
}

// dashboard is what the test reads of a Grafana dashboard.
type dashboard struct {
	Panels []struct {
		Title   string
		Targets []struct{ Expr string }
	}
	Templating struct {
		List []struct {
			Name       string
			Definition string
		}
	}
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// grafanaVars replaces the dashboard's variables with values that make
// plain PromQL of its queries.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")

// dashboardExprs returns the PromQL of every panel query, variables
// replaced, keyed by where it is.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range readDashboard(t).Panels {
		for i, q := range p.Targets {
			out[fmt.Sprintf("panel %q query %d", p.Title, i)] = grafanaVars.Replace(q.Expr)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no queries", dashboardFile)
	}
	return out
}

// TestObservabilityDashboardParses: promtool parses every query of the
// dashboard, each written as a recording rule.
func TestObservabilityDashboardParses(t *testing.T) {
	promtool(t)
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for _, e := range dashboardExprs(t) {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query%d", len(rules)), Expr: e})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, dir, "check", "rules", "dashboard.yaml")
}

// alertExprs returns the PromQL of every alerting rule, keyed by alert.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	return out
}

// promqlWords are the identifiers of PromQL that name no metric when not
// followed by a parenthesis (functions always are).
var promqlWords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
}

// labelLists are the keywords followed by a parenthesised list of label
// names, which are no metrics either.
var labelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promqlMetrics returns the metric names a PromQL expression selects. It is
// a lexer, not a parser (promtool checks the syntax): it drops strings,
// label matchers, ranges, numbers, label lists, keywords and function
// names, and what identifiers remain are metrics.
func promqlMetrics(expr string) []string {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	// skipString returns the index just past the string quoted at i.
	skipString := func(i int) int {
		q := expr[i]
		for i++; i < len(expr) && expr[i] != q; i++ {
			if expr[i] == '\\' && q != '`' {
				i++
			}
		}
		return i + 1
	}
	// skip returns the index just past the bracket that closes the one at i,
	// stepping over quoted strings inside.
	skip := func(i int, open, close byte) int {
		depth := 0
		for i < len(expr) {
			switch expr[i] {
			case '"', '\'', '`':
				i = skipString(i)
				continue
			case open:
				depth++
			case close:
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(i)
		case c == '{':
			i = skip(i, '{', '}')
		case c == '[':
			i = skip(i, '[', ']')
		case c >= '0' && c <= '9' || c == '.':
			for i++; i < len(expr) && (isPart(expr[i]) || expr[i] == '.'); i++ {
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := len(expr) - len(strings.TrimLeft(expr[j:], " \t\n"))
			called := k < len(expr) && expr[k] == '('
			switch {
			case labelLists[strings.ToLower(word)] && called:
				j = skip(k, '(', ')')
			case called, promqlWords[strings.ToLower(word)]:
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	return names
}

func TestPromQLMetrics(t *testing.T) {
	for expr, want := range map[string][]string{
		`up{job="weft"} == 0`: {"up"},
		`histogram_quantile(0.99, sum by (address, le) (rate(weft_http_request_duration_seconds_bucket{instance=~".*"}[5m])))`: {"weft_http_request_duration_seconds_bucket"},
		`sum by (address) (rate(a_total{code=~"5.."}[5m])) / sum without (code) (rate(a_total[5m])) > 0.05`:                    {"a_total"},
		`weft_x - time() < 7 * 86400 and on (instance) b:rule unless ignoring(x) group_left(y) c offset 5m`:                    {"weft_x", "b:rule", "c"},
		"max_over_time(m[1h:1m]) unless\n  n{l=\"a}b\\\"\"}":                                                                   {"m", "n"},
		`label_replace(x, "dst", "$1", "src", "(.*)") or increase(y[10m]) > 1e3`:                                               {"x", "y"},
	} {
		if got := promqlMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("promqlMetrics(%q) = %q, want %q", expr, got, want)
		}
	}
}

// labelValuesMetric is the metric of a Grafana label_values(metric, label)
// variable query.
var labelValuesMetric = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)

// prometheusOwn are series Prometheus records itself for each target.
var prometheusOwn = map[string]bool{"up": true}

// TestObservabilityMetricsExported: every metric the dashboard and the
// alerts use is one that real sites export. Two linked sites carry TCP and
// HTTP traffic through a listener and a connector, a connection that
// reaches no connector, persisted events to a push subscription, and hold
// a bridge to a broker that is not there; their /metrics are scraped and
// compared with every metric name in the queries.
func TestObservabilityMetricsExported(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	a.linkTo(b)

	b.weft("connector", "create", "echo", "--target", echoServer(t, "echo-b"))
	echo := a.listen("echo")
	waitServed(t, a, "echo", "b")
	if got, err := greeting(echo); err != nil || got != "echo-b" {
		t.Fatalf("through a's echo listener: %q %v, want echo-b", got, err)
	}
	if c, err := net.Dial("tcp", a.listen("nowhere")); err == nil {
		c.Close() // reaches no connector: a counts a failed stream
	}

	be := startBackend(t, "web-b")
	b.weft("connector", "create", "web", "--target", be.addr, "--protocol", "http")
	web := a.listenHTTP("web")
	waitServed(t, a, "web", "b")
	client := &http.Client{Timeout: 10 * time.Second}
	if code, body, err := get(client, web); err != nil || code != 200 || body != "web-b" {
		t.Fatalf("GET through a's web listener: %d %q %v", code, body, err)
	}

	a.weft("topic", "create", "obs", "--delivery", "persisted")
	sk := newSink(t, func(string, int) int { return 0 })
	b.weft("subscription", "create", "s", "--topic", "obs", "--sink", sk.url)
	n := 0
	waitFor(t, 15*time.Second, "an event from a at b's sink", func() bool {
		n++
		a.publishBatch("/v1/topics/obs", []ce{{ID: fmt.Sprint("probe-", n), Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}})
		return len(sk.got()) > 0
	})

	// A persisted queue with no consumer anywhere keeps its event as
	// backlog at a.
	a.weft("queue", "create", "obsq", "--delivery", "persisted")
	if code, body := a.publishBatch("/v1/queues/obsq", batch("job", "/a", 0, 1)); code != http.StatusAccepted {
		t.Fatalf("publish to obsq: %d %s", code, body)
	}

	// A sink that refuses every event (400: not worth a retry) makes a
	// count of it as dropped, per topic.
	a.weft("topic", "create", "obsdrop")
	refuser := newSink(t, func(string, int) int { return http.StatusBadRequest })
	a.weft("subscription", "create", "refused", "--topic", "obsdrop", "--sink", refuser.url)
	waitFor(t, 15*time.Second, "a to drop an event its sink refused", func() bool {
		a.publishBatch("/v1/topics/obsdrop", batch("drop", "/a", 0, 1))
		return a.metric("weft_events_address_dropped_total", `address="obsdrop",kind="topic"`) >= 1
	})

	a.weft("bridge", "create", "br", "--broker", fmt.Sprintf("nats://127.0.0.1:%d", freePort(t)), "--in", "obs.in=obs")

	exported := map[string]bool{}
	waitFor(t, 15*time.Second, "the HTTP request and the stream failure in a's metrics", func() bool {
		fams := scrapeMetrics(t, a)
		return fams["weft_http_requests_total"] != nil && fams["weft_streams_failed_total"] != nil
	})
	for _, s := range []*site{a, b} {
		for name, f := range scrapeMetrics(t, s) {
			exported[name] = true
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				exported[name+"_bucket"], exported[name+"_sum"], exported[name+"_count"] = true, true, true
			case dto.MetricType_SUMMARY:
				exported[name+"_sum"], exported[name+"_count"] = true, true
			}
		}
	}

	// The scrape-time gauges say what the sites hold.
	if got := a.metric("weft_address_candidates", `address="echo",state="ok"`); got != 1 {
		t.Errorf(`weft_address_candidates{address="echo",state="ok"} at a = %v, want 1 (b serves it)`, got)
	}
	if got := a.metric("weft_events_queue_backlog", `queue="obsq"`); got != 1 {
		t.Errorf(`weft_events_queue_backlog{queue="obsq"} at a = %v, want 1 (no consumer)`, got)
	}
	if got := a.metric("weft_events_address_published_total", `address="obs",kind="topic"`); got < 1 {
		t.Errorf(`weft_events_address_published_total{address="obs",kind="topic"} at a = %v, want at least 1`, got)
	}
	if got := a.metric("weft_link_up", `peer="b"`); got != 1 {
		t.Errorf(`weft_link_up{peer="b"} at a = %v, want 1 (the link is up)`, got)
	}
	if got := a.metric("weft_bridge_connected", `bridge="br"`); got != 0 {
		t.Errorf("weft_bridge_connected for a bridge to no broker = %v, want 0", got)
	}
	if got := a.metric("weft_certificate_expiry_timestamp_seconds", `certificate="server"`); got < float64(time.Now().Unix()) {
		t.Errorf("a's server certificate expires at %v, before now", got)
	}

	uses := dashboardExprs(t)
	for where, e := range alertExprs(t) {
		uses[where] = e
	}
	for _, v := range readDashboard(t).Templating.List {
		if m := labelValuesMetric.FindStringSubmatch(v.Definition); m != nil {
			uses["variable "+v.Name] = m[1]
		}
	}
	checked := 0
	for where, expr := range uses {
		names := promqlMetrics(expr)
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", where, expr)
		}
		for _, name := range names {
			checked++
			if !exported[name] && !prometheusOwn[name] {
				t.Errorf("%s uses %s, which no weft site exports", where, name)
			}
		}
	}
	t.Logf("%d metric uses in %d queries checked against %d exported names", checked, len(uses), len(exported))
}
