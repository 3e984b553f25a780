package main

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
)

// config says what to measure and for how long.
type config struct {
	WeftBin    string
	HAProxyBin string
	// WeftUnsealedBin, if set, is weft built from the same tree with
	// -tags weft_bench_unsealed: a fourth path, so that what sealing costs
	// is measured in the same run, against the same build.
	WeftUnsealedBin string
	// WeftRevision names the weft source when the binary has no VCS stamp.
	WeftRevision string
	// HAProxyPlain adds two HAProxy instances joined by plain TCP: what a
	// two-process relay costs with no cryptography at all, a floor for
	// the proxied paths.
	HAProxyPlain bool

	BulkBytes    int64         // bytes per bulk transfer
	ConnDuration time.Duration // per new-connection measurement
	Dialers      int           // concurrent dialers in the new-connection test
	LatDuration  time.Duration // per latency measurement
	LatConns     int           // concurrent connections in the latency test
	ReqSize      int           // request and response size in the latency test
	Rounds       int           // repetitions of every measurement; the median is reported
	Quick        bool

	Log io.Writer // progress lines
}

func (c config) validate() error {
	switch {
	case c.WeftBin == "":
		return fmt.Errorf("the path of the weft binary is required (-weft)")
	case c.HAProxyBin == "":
		return fmt.Errorf("the path of haproxy is required (-haproxy)")
	case c.BulkBytes <= 0, c.ConnDuration <= 0, c.LatDuration <= 0:
		return fmt.Errorf("bulk bytes and durations must be positive")
	case c.Dialers <= 0, c.LatConns <= 0, c.ReqSize < 8, c.Rounds <= 0:
		return fmt.Errorf("dialers, connections and rounds must be positive and the request at least 8 bytes")
	}
	return nil
}

// The paths compared, in table order.
const (
	pathDirect   = "direct"
	pathWeft     = "weft"
	pathHAProxy  = "haproxy"
	pathUnsealed = "weft-unsealed"
	pathPlain    = "haproxy-plain"
)

// pathNames are the paths cfg compares.
func (c config) pathNames() []string {
	names := []string{pathDirect, pathWeft, pathHAProxy}
	for _, o := range c.optionalPaths() {
		names = append(names, o.path)
	}
	return names
}

// optionalPath is a path measured only when asked for; the table shows it
// in a column of its own, with weft's figure over it.
type optionalPath struct {
	path, column, compared string
}

func (c config) optionalPaths() []optionalPath {
	var o []optionalPath
	if c.WeftUnsealedBin != "" {
		o = append(o, optionalPath{pathUnsealed, "unsealed",
			"weft-unsealed: as weft, the same source built with -tags weft_bench_unsealed (service streams not sealed end to end)"})
	}
	if c.HAProxyPlain {
		o = append(o, optionalPath{pathPlain, "plain",
			"haproxy-plain: as haproxy, with plain TCP between a and b (no TLS): the floor of a two-process relay"})
	}
	return o
}

// path is one way from the client to the servers.
type path struct {
	name  string
	addrs map[string]string // route name -> address the client dials
	procs []*benchproc.Proc // proxy processes on the path, for CPU accounting
}

func (p *path) cpu() float64 {
	var s float64
	for _, pr := range p.procs {
		s += pr.CPUSeconds()
	}
	return s
}

// run sets up the servers and the three paths, measures, and tears everything
// down before returning, whether it succeeded or not.
func run(ctx context.Context, cfg config) (rep *Report, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	var cl benchproc.Cleanups
	defer cl.Run()

	rep = newReport(cfg)

	sinkSrv, err := newServer(sink)
	if err != nil {
		return nil, err
	}
	cl.Add(sinkSrv.close)
	echoSrv, err := newServer(echo)
	if err != nil {
		return nil, err
	}
	cl.Add(echoSrv.close)
	routes := []route{{"sink", sinkSrv.addr()}, {"echo", echoSrv.addr()}}

	paths := map[string]*path{
		pathDirect: {name: pathDirect, addrs: map[string]string{"sink": sinkSrv.addr(), "echo": echoSrv.addr()}},
	}
	logf("starting weft sites a and b (%s)", cfg.WeftBin)
	addrs, procs, err := startWeft(ctx, &cl, cfg.WeftBin, routes)
	if err != nil {
		return nil, fmt.Errorf("weft: %w", err)
	}
	paths[pathWeft] = &path{name: pathWeft, addrs: addrs, procs: procs}
	logf("starting haproxy a and b (%s)", cfg.HAProxyBin)
	addrs, procs, err = startHAProxy(ctx, &cl, cfg.HAProxyBin, routes, true)
	if err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	paths[pathHAProxy] = &path{name: pathHAProxy, addrs: addrs, procs: procs}
	if cfg.HAProxyPlain {
		logf("starting haproxy a and b joined by plain TCP")
		addrs, procs, err = startHAProxy(ctx, &cl, cfg.HAProxyBin, routes, false)
		if err != nil {
			return nil, fmt.Errorf("plain haproxy: %w", err)
		}
		paths[pathPlain] = &path{name: pathPlain, addrs: addrs, procs: procs}
	}
	if cfg.WeftUnsealedBin != "" {
		logf("starting unsealed weft sites a and b (%s)", cfg.WeftUnsealedBin)
		addrs, procs, err = startWeft(ctx, &cl, cfg.WeftUnsealedBin, routes)
		if err != nil {
			return nil, fmt.Errorf("unsealed weft: %w", err)
		}
		paths[pathUnsealed] = &path{name: pathUnsealed, addrs: addrs, procs: procs}
	}
	pathNames := cfg.pathNames()

	// Every path must carry an echo before anything is timed.
	for _, name := range pathNames {
		p := paths[name]
		err := benchproc.Poll(ctx, 15*time.Second, name+" path to carry an echo", func() error {
			return roundTrip(ctx, p.addrs["echo"])
		})
		if err != nil {
			return nil, err
		}
	}

	pattern := newBulkPattern(cfg.BulkBytes)
	// measure runs one measurement on every path for every round. The order
	// of the paths rotates per round so that a slow spell on the shared
	// machine does not always hit the same path.
	measure := func(key string, f func(p *path) (map[string]float64, error)) error {
		for r := range cfg.Rounds {
			for i := range pathNames {
				name := pathNames[(i+r)%len(pathNames)]
				p := paths[name]
				runtime.GC() // keep the previous measurement's garbage out of this one
				cpu0, t0 := p.cpu(), time.Now()
				vals, err := f(p)
				if ctx.Err() != nil {
					// Cut short by a signal: whatever f reports is a
					// consequence, not a finding about the path.
					return fmt.Errorf("interrupted during %s over %s: %w", key, name, ctx.Err())
				}
				if err != nil {
					return fmt.Errorf("%s over %s: %w", key, name, err)
				}
				cores := (p.cpu() - cpu0) / time.Since(t0).Seconds()
				for k, v := range vals {
					rep.add(k, name, v, cores)
				}
				logf("  round %d %-13s %s", r+1, name, formatVals(vals))
			}
		}
		return nil
	}

	logf("bulk: %d bytes over one connection, %d round(s)", cfg.BulkBytes, cfg.Rounds)
	err = measure("bulk", func(p *path) (map[string]float64, error) {
		mbs, err := measureBulk(ctx, p.addrs["sink"], pattern)
		return map[string]float64{metricBulk: mbs}, err
	})
	if err != nil {
		return nil, err
	}

	logf("new connections: %d dialers for %v, %d round(s)", cfg.Dialers, cfg.ConnDuration, cfg.Rounds)
	err = measure("connections", func(p *path) (map[string]float64, error) {
		res, err := measureConns(ctx, p.addrs["echo"], cfg.Dialers, cfg.ConnDuration)
		rep.ConnErrors[p.name] += res.errs
		if res.first != nil && rep.FirstConnError[p.name] == "" {
			rep.FirstConnError[p.name] = res.first.Error()
		}
		return map[string]float64{metricConns: res.perSec}, err
	})
	if err != nil {
		return nil, err
	}

	logf("latency: %d connections x %d-byte request/response for %v, %d round(s)", cfg.LatConns, cfg.ReqSize, cfg.LatDuration, cfg.Rounds)
	err = measure("latency", func(p *path) (map[string]float64, error) {
		res, err := measureLatency(ctx, p.addrs["echo"], cfg.LatConns, cfg.ReqSize, cfg.LatDuration)
		return map[string]float64{
			metricP50:  float64(res.p50) / float64(time.Microsecond),
			metricP99:  float64(res.p99) / float64(time.Microsecond),
			metricRate: res.perSec,
		}, err
	})
	if err != nil {
		return nil, err
	}

	// A proxy that died during a measurement would have failed it, but one
	// that died right after would not: check before reporting.
	for _, name := range pathNames {
		for _, pr := range paths[name].procs {
			if pr.Exited() {
				return nil, fmt.Errorf("%s exited during the benchmark: %s", pr.Name(), pr.Output())
			}
		}
	}
	rep.finish()
	return rep, nil
}

func formatVals(vals map[string]float64) string {
	var parts []string
	for _, m := range metricDefs {
		if v, ok := vals[m.Key]; ok {
			parts = append(parts, fmt.Sprintf("%s=%.1f %s", m.Key, v, m.Unit))
		}
	}
	return strings.Join(parts, "  ")
}

// weftBuild describes the weft binary: the Go that built it and its commit.
func weftBuild(bin string) (goVersion, revision string) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "unknown", "unknown"
	}
	revision = "unknown"
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		revision += " (with uncommitted changes)"
	}
	return bi.GoVersion, revision
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
