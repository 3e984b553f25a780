package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
)

// wrkResult is one wrk run: requests per second and the p99 latency.
type wrkResult struct {
	rate float64
	p99  time.Duration
	cpu  float64 // cores busy in the path's proxies
}

// runWrk is the HTTP-mode row: wrk with conc keep-alive connections
// sends GETs answered with 3 bytes by a server in this process, directly,
// through weft (listener at a, connector at b, --protocol http) and
// through the HAProxy pair (mode http, h2 over mutual TLS between a and
// b); rounds rounds of dur each, rotating which path goes first.
func runWrk(ctx context.Context, cl *benchproc.Cleanups, weft, haproxy, wrk string, conc int, dur time.Duration, rounds int, prof *profiler) error {
	target, err := serveTiny(cl)
	if err != nil {
		return err
	}
	wl, weftProcs, err := weftHTTPPath(ctx, cl, weft, target, prof)
	if err != nil {
		return err
	}
	hp, hpProcs, err := startHAProxyPair(ctx, cl, haproxy, target, false)
	if err != nil {
		return err
	}
	paths := []struct {
		name  string
		addr  string
		procs []*benchproc.Proc
	}{{"direct", target, nil}, {"weft", wl, weftProcs}, {"haproxy", hp, hpProcs}}
	threads := min(2, conc)
	fmt.Printf("HTTP mode: wrk -t%d -c%d -d%v (HTTP/1.1 keep-alive GET, 3-byte answers), %d rounds rotating the order\n", threads, conc, dur, rounds)
	fmt.Printf("  direct:  wrk -> target (Go net/http, in the harness)\n")
	fmt.Printf("  weft:    wrk -> site a (listener --protocol http) -> link, mutual TLS 1.3 -> site b (connector --protocol http) -> target\n")
	fmt.Printf("  haproxy: wrk -> HAProxy a (mode http) -> h2 over mutual TLS 1.3 -> HAProxy b (mode http) -> target HTTP/1.1\n")
	fmt.Printf("  %s; %s\n\n", benchproc.HAProxyVersion(haproxy), wrkVersion(wrk))
	// A short warm-up on each path: pools filled, JIT-free but caches warm.
	for _, p := range paths {
		if _, err := wrkRun(wrk, p.addr, threads, conc, 2*time.Second); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	res := map[string][]wrkResult{}
	for r := range rounds {
		for i := range paths {
			p := paths[(i+r)%len(paths)]
			var got wrkResult
			load := func() error {
				cpu0 := cpuOf(p.procs)
				start := time.Now()
				var err error
				got, err = wrkRun(wrk, p.addr, threads, conc, dur)
				got.cpu = (cpuOf(p.procs) - cpu0) / time.Since(start).Seconds()
				return err
			}
			if err := prof.round("http", p.name, r, rounds, dur-2*time.Second, load); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			res[p.name] = append(res[p.name], got)
		}
	}
	med := func(name string, f func(wrkResult) float64) float64 {
		v := make([]float64, 0, rounds)
		for _, r := range res[name] {
			v = append(v, f(r))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rate := func(r wrkResult) float64 { return r.rate }
	p99 := func(r wrkResult) float64 { return float64(r.p99) }
	cpu := func(r wrkResult) float64 { return r.cpu }
	// CPU per request is the steadiest figure on a shared machine: the
	// outside load moves req/s far more than the work each request costs.
	perReq := func(r wrkResult) float64 { return r.cpu / r.rate * 1e6 }
	fmt.Printf("%-8s %10s %10s %10s %11s   %s\n", "path", "req/s", "p99", "proxy CPU", "CPU µs/req", "every round (req/s / p99 / CPU µs/req)")
	for _, p := range paths {
		var each []string
		for _, r := range res[p.name] {
			each = append(each, fmt.Sprintf("%.0f / %v / %.0f", r.rate, r.p99, perReq(r)))
		}
		fmt.Printf("%-8s %10.0f %10v %10.2f %11.0f   %s\n", p.name, med(p.name, rate), time.Duration(med(p.name, p99)), med(p.name, cpu), med(p.name, perReq), strings.Join(each, ", "))
	}
	fmt.Printf("\nweft/haproxy: req/s %.2f (median of the per-round ratios %.2f), p99 %.2f, CPU per request %.2f; weft/direct req/s %.2f\n",
		med("weft", rate)/med("haproxy", rate), medianRatio(res["weft"], res["haproxy"]),
		med("weft", p99)/med("haproxy", p99), med("weft", perReq)/med("haproxy", perReq), med("weft", rate)/med("direct", rate))
	return nil
}

// medianRatio is the median of weft's rate over HAProxy's, round by round:
// both ran minutes apart at most, under the same outside load.
func medianRatio(w, h []wrkResult) float64 {
	var r []float64
	for i := range w {
		r = append(r, w[i].rate/h[i].rate)
	}
	slices.Sort(r)
	return r[len(r)/2]
}

func cpuOf(procs []*benchproc.Proc) float64 {
	var s float64
	for _, p := range procs {
		s += p.CPUSeconds()
	}
	return s
}

var (
	wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP99  = regexp.MustCompile(`(?m)^\s+99%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkBad  = regexp.MustCompile(`(Non-2xx or 3xx responses|Socket errors):.*`)
)

// wrkTimeout is how long wrk waits for an answer before it counts a
// socket error. wrk's own 2 s counts a stall of a loaded shared machine
// (HAProxy's as much as weft's) as an error and fails the run; a slow
// answer belongs in p99 instead.
const wrkTimeout = 10 * time.Second

// wrkRun runs wrk against addr and reads its summary. Any non-2xx answer
// or socket error fails the run: a proxy that answers errors fast must not
// look fast.
func wrkRun(wrk, addr string, threads, conc int, d time.Duration) (wrkResult, error) {
	out, err := exec.Command(wrk, fmt.Sprintf("-t%d", threads), fmt.Sprintf("-c%d", conc), fmt.Sprintf("-d%ds", int(d.Seconds())),
		fmt.Sprintf("--timeout=%ds", int(wrkTimeout.Seconds())), "--latency", "http://"+addr+"/").CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	return parseWrk(out)
}

// parseWrk reads the rate and p99 from wrk --latency's summary.
func parseWrk(out []byte) (wrkResult, error) {
	if m := wrkBad.Find(out); m != nil {
		return wrkResult{}, fmt.Errorf("wrk: %s\n%s", m, out)
	}
	mr, mp := wrkRate.FindSubmatch(out), wrkP99.FindSubmatch(out)
	if mr == nil || mp == nil {
		return wrkResult{}, fmt.Errorf("wrk printed no rate or p99:\n%s", out)
	}
	rate, _ := strconv.ParseFloat(string(mr[1]), 64)
	v, _ := strconv.ParseFloat(string(mp[1]), 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(mp[2])]
	return wrkResult{rate: rate, p99: time.Duration(v * float64(unit)).Round(10 * time.Microsecond)}, nil
}

func wrkVersion(wrk string) string {
	out, _ := exec.Command(wrk, "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// serveTiny serves 3-byte answers over HTTP/1.1 and h2c.
func serveTiny(cl *benchproc.Cleanups) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})}
	go srv.Serve(ln)
	cl.Add(func() { srv.Close() })
	return ln.Addr().String(), nil
}
