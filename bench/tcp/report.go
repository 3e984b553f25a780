package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
)

// Metric keys, also the keys in the JSON file.
const (
	metricBulk  = "bulk_mb_per_s"
	metricConns = "new_conns_per_s"
	metricP50   = "latency_p50_us"
	metricP99   = "latency_p99_us"
	metricRate  = "rr_per_s"
)

type metricDef struct {
	Key, Name, Unit string
	HigherIsBetter  bool
}

var metricDefs = []metricDef{
	{metricBulk, "bulk throughput, 1 stream", "MB/s", true},
	{metricConns, "new connections", "conn/s", true},
	{metricP50, "1 KiB req/resp latency p50", "µs", false},
	{metricP99, "1 KiB req/resp latency p99", "µs", false},
	{metricRate, "1 KiB req/resp rate, 32 conns", "req/s", true},
}

// Report is everything a run found; it is also the JSON file's schema.
type Report struct {
	Time     string   `json:"time"`
	Command  []string `json:"command,omitempty"`
	Compared []string `json:"compared"`
	Machine  struct {
		NProc      int    `json:"nproc"`
		GOMAXPROCS int    `json:"gomaxprocs"`
		OS         string `json:"os"`
		Arch       string `json:"arch"`
		Kernel     string `json:"kernel"`
		Note       string `json:"note"`
	} `json:"machine"`
	GoVersion      string `json:"go_version"`
	WeftGoVersion  string `json:"weft_go_version"`
	WeftRevision   string `json:"weft_revision"`
	HAProxyVersion string `json:"haproxy_version"`
	Settings       struct {
		BulkBytes    int64  `json:"bulk_bytes"`
		ConnDuration string `json:"conn_duration"`
		Dialers      int    `json:"dialers"`
		LatDuration  string `json:"latency_duration"`
		LatConns     int    `json:"latency_conns"`
		ReqSize      int    `json:"request_bytes"`
		Rounds       int    `json:"rounds"`
		Quick        bool   `json:"quick"`
		TLS          string `json:"tls"`
	} `json:"settings"`
	Metrics []*Metric `json:"metrics"`
	paths   []string
	others  []optionalPath
	// Failed attempts in the new-connection test (not counted in its rate).
	ConnErrors     map[string]int64  `json:"conn_errors"`
	FirstConnError map[string]string `json:"first_conn_error,omitempty"`
}

// Metric is one row of the table: the median over rounds per path, the
// ratios, every round's value, and the CPU the proxy processes used.
type Metric struct {
	Key             string  `json:"key"`
	Name            string  `json:"name"`
	Unit            string  `json:"unit"`
	HigherIsBetter  bool    `json:"higher_is_better"`
	Direct          float64 `json:"direct"`
	Weft            float64 `json:"weft"`
	HAProxy         float64 `json:"haproxy"`
	WeftOverDirect  float64 `json:"weft_over_direct"`
	WeftOverHAProxy float64 `json:"weft_over_haproxy"`
	// The optional paths' medians by path name, and weft over each: with
	// -weft-unsealed, what sealing keeps (1 is free); with
	// -haproxy-plain, weft against a relay with no cryptography.
	Others   map[string]float64   `json:"others,omitempty"`
	WeftOver map[string]float64   `json:"weft_over_others,omitempty"`
	Rounds   map[string][]float64 `json:"rounds"`
	// Cores busy in the path's proxy processes (both of them together)
	// during the measurement: CPU seconds divided by wall seconds.
	ProxyCores map[string]float64 `json:"proxy_cores"`
	// For the rates (connections, requests): CPU microseconds the path's
	// proxy processes spent per operation, median of the rounds' cores
	// over rate. Less moved by the machine's load than the rate itself.
	ProxyCPUPerOp map[string]float64 `json:"proxy_cpu_us_per_op,omitempty"`
	cores         map[string][]float64
}

func newReport(cfg config) *Report {
	r := &Report{
		Time: time.Now().UTC().Format(time.RFC3339),
		Compared: []string{
			"direct: client -> server on 127.0.0.1 (in-process Go servers)",
			"weft: client -> weft site a listener -> link (mutual TLS 1.3) -> weft site b connector -> server",
			"haproxy: client -> haproxy a (mode tcp) -> mutual TLS 1.3 -> haproxy b -> server",
		},
		paths:          cfg.pathNames(),
		others:         cfg.optionalPaths(),
		GoVersion:      runtime.Version(),
		HAProxyVersion: benchproc.HAProxyVersion(cfg.HAProxyBin),
		ConnErrors:     map[string]int64{},
		FirstConnError: map[string]string{},
	}
	for _, o := range r.others {
		r.Compared = append(r.Compared, o.compared)
	}
	r.WeftGoVersion, r.WeftRevision = weftBuild(cfg.WeftBin)
	if r.WeftRevision == "unknown" && cfg.WeftRevision != "" {
		r.WeftRevision = cfg.WeftRevision
	}
	r.Machine.NProc = runtime.NumCPU()
	r.Machine.GOMAXPROCS = runtime.GOMAXPROCS(0)
	r.Machine.OS, r.Machine.Arch, r.Machine.Kernel = runtime.GOOS, runtime.GOARCH, kernel()
	r.Machine.Note = "clients, servers and both proxies of a path share these CPUs; nothing is pinned"
	s := &r.Settings
	s.BulkBytes, s.ConnDuration, s.Dialers = cfg.BulkBytes, cfg.ConnDuration.String(), cfg.Dialers
	s.LatDuration, s.LatConns, s.ReqSize = cfg.LatDuration.String(), cfg.LatConns, cfg.ReqSize
	s.Rounds, s.Quick = cfg.Rounds, cfg.Quick
	s.TLS = "TLS 1.3, " + tlsCiphersuite + ", ECDSA P-256 certificates, client certificates required"
	for _, d := range metricDefs {
		r.Metrics = append(r.Metrics, &Metric{
			Key: d.Key, Name: d.Name, Unit: d.Unit, HigherIsBetter: d.HigherIsBetter,
			Rounds: map[string][]float64{}, ProxyCores: map[string]float64{}, cores: map[string][]float64{},
		})
	}
	return r
}

func (r *Report) metric(key string) *Metric {
	for _, m := range r.Metrics {
		if m.Key == key {
			return m
		}
	}
	panic("unknown metric " + key)
}

func (r *Report) add(key, path string, v, cores float64) {
	m := r.metric(key)
	m.Rounds[path] = append(m.Rounds[path], v)
	if path != pathDirect {
		m.cores[path] = append(m.cores[path], cores)
	}
}

// finish computes medians and ratios.
func (r *Report) finish() {
	for _, m := range r.Metrics {
		m.Direct = median(m.Rounds[pathDirect])
		m.Weft = median(m.Rounds[pathWeft])
		m.HAProxy = median(m.Rounds[pathHAProxy])
		m.WeftOverDirect = ratio(m.Weft, m.Direct)
		m.WeftOverHAProxy = ratio(m.Weft, m.HAProxy)
		for _, o := range r.others {
			if m.Others == nil {
				m.Others, m.WeftOver = map[string]float64{}, map[string]float64{}
			}
			m.Others[o.path] = median(m.Rounds[o.path])
			m.WeftOver[o.path] = ratio(m.Weft, m.Others[o.path])
		}
		for p, c := range m.cores {
			m.ProxyCores[p] = median(c)
			if m.Key != metricConns && m.Key != metricRate {
				continue
			}
			per := make([]float64, len(c))
			for i := range c {
				per[i] = 1e6 * c[i] / m.Rounds[p][i]
			}
			if m.ProxyCPUPerOp == nil {
				m.ProxyCPUPerOp = map[string]float64{}
			}
			m.ProxyCPUPerOp[p] = median(per)
		}
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// writeTable prints the header (what was compared, on what) and the table.
func (r *Report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "weft TCP benchmark, %s\n", r.Time)
	if len(r.Command) > 0 {
		fmt.Fprintf(w, "command:  %s\n", strings.Join(r.Command, " "))
	}
	fmt.Fprintln(w, "compared:")
	for _, c := range r.Compared {
		fmt.Fprintf(w, "  %s\n", c)
	}
	fmt.Fprintf(w, "machine:  nproc %d, GOMAXPROCS %d, %s/%s, kernel %s (%s)\n",
		r.Machine.NProc, r.Machine.GOMAXPROCS, r.Machine.OS, r.Machine.Arch, r.Machine.Kernel, r.Machine.Note)
	fmt.Fprintf(w, "go:       %s (bench), %s (weft binary, revision %s)\n", r.GoVersion, r.WeftGoVersion, r.WeftRevision)
	fmt.Fprintf(w, "haproxy:  %s\n", r.HAProxyVersion)
	s := r.Settings
	fmt.Fprintf(w, "how:      bulk %d MiB on one connection (checksummed); new connections: %d dialers for %s, each connect + 1-byte echo + close;\n",
		s.BulkBytes>>20, s.Dialers, s.ConnDuration)
	fmt.Fprintf(w, "          latency: %d connections, %d-byte request then echo, one outstanding per connection, for %s;\n",
		s.LatConns, s.ReqSize, s.LatDuration)
	fmt.Fprintf(w, "          %s; median of %d round(s)%s\n", s.TLS, s.Rounds, map[bool]string{true: " (QUICK MODE: smoke run, figures not meaningful)"}[s.Quick])
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "metric\tunit\tdirect\tweft\thaproxy\tweft/direct\tweft/haproxy\t"
	for _, o := range r.others {
		head += o.column + "\tweft/" + o.column + "\t"
	}
	fmt.Fprintln(tw, head+"better\t")
	for _, m := range r.Metrics {
		better := "lower"
		if m.HigherIsBetter {
			better = "higher"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t", m.Name, m.Unit,
			num(m.Direct), num(m.Weft), num(m.HAProxy), m.WeftOverDirect, m.WeftOverHAProxy)
		for _, o := range r.others {
			fmt.Fprintf(tw, "%s\t%.2f\t", num(m.Others[o.path]), m.WeftOver[o.path])
		}
		fmt.Fprintf(tw, "%s\t\n", better)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CPU cores busy in the proxy processes (both together) during each measurement:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head = "measurement\tweft\thaproxy\t"
	for _, o := range r.others {
		head += o.column + "\t"
	}
	fmt.Fprintln(tw, head)
	for _, m := range r.Metrics {
		if m.Key == metricP99 || m.Key == metricRate { // same measurement as p50
			continue
		}
		name := m.Name
		if m.Key == metricP50 {
			name = "1 KiB req/resp, 32 conns"
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t", name, m.ProxyCores[pathWeft], m.ProxyCores[pathHAProxy])
		for _, o := range r.others {
			fmt.Fprintf(tw, "%.2f\t", m.ProxyCores[o.path])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CPU µs in the proxy processes (both together) per operation, median of the rounds:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, head)
	for _, m := range r.Metrics {
		if m.ProxyCPUPerOp == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t", m.Name, m.ProxyCPUPerOp[pathWeft], m.ProxyCPUPerOp[pathHAProxy])
		for _, o := range r.others {
			fmt.Fprintf(tw, "%.0f\t", m.ProxyCPUPerOp[o.path])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	var errs []string
	for _, p := range r.paths {
		if n := r.ConnErrors[p]; n > 0 {
			errs = append(errs, fmt.Sprintf("%s: %d (first: %s)", p, n, r.FirstConnError[p]))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nfailed connection attempts (not counted): %s\n", strings.Join(errs, "; "))
	}
}

func num(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
