// Command grpc measures HTTP mode, gRPC and the latency balance policy
// through weft.
//
// Mode wrk: the HTTP-mode row. wrk -c32 keep-alive GETs with tiny answers,
// directly, through weft (listener at site a, connector at site b, both
// --protocol http) and through two HAProxy instances in mode http joined
// by mutual TLS with h2 between them. Reports req/s, p99, and the CPU the
// proxies used, per round and as medians.
//
// Mode grpc: unary RPCs from one client connection with -c concurrent
// calls (32) for -d, to a grpc-go server (internal/service/grpctest)
// directly, through weft (h2c into a and out of b) and through the same
// HAProxy pair (h2c in and out, h2 over mutual TLS between). Reports
// RPCs/s, p50 and p99.
//
// Mode policy: ingress a linked to b (cost 1, the cheap candidate) and c
// (cost 10); b's backend answers in -slow (10 × c's -fast). For --balance
// cost and latency: where the requests went and the client's p50/p99.
//
// Run it through bench/run-http.sh --grpc or --policy.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"weft.dev/weft/bench/internal/benchproc"
	"weft.dev/weft/internal/service/grpctest"
)

func main() {
	mode := flag.String("mode", "grpc", "wrk, grpc or policy")
	weft := flag.String("weft", "weft", "weft binary")
	conc := flag.Int("c", 32, "grpc: concurrent RPCs on the one client connection; policy: concurrent HTTP clients")
	dur := flag.Duration("d", 10*time.Second, "wrk, grpc: duration of each run")
	rounds := flag.Int("rounds", 3, "wrk, grpc: rounds over every path")
	haproxy := flag.String("haproxy", "haproxy", "wrk, grpc: HAProxy binary")
	wrk := flag.String("wrk", "wrk", "wrk: wrk binary")
	profile := flag.String("profile", "", "wrk, grpc: save CPU and allocation profiles of both weft sites in the last weft run to this directory (weft built with -tags pprof)")
	n := flag.Int("n", 2000, "policy: requests per policy")
	fast := flag.Duration("fast", 5*time.Millisecond, "policy: the costly candidate's answer time")
	slow := flag.Duration("slow", 50*time.Millisecond, "policy: the cheap candidate's answer time")
	flag.Parse()

	cl := &benchproc.Cleanups{}
	defer cl.Run()
	ctx := context.Background()
	prof, err := newProfiler(*profile)
	if err != nil {
		log.Fatal(err)
	}
	switch *mode {
	case "wrk":
		err = runWrk(ctx, cl, *weft, *haproxy, *wrk, *conc, *dur, max(1, *rounds), prof)
	case "grpc":
		err = runGRPC(ctx, cl, *weft, *haproxy, *conc, *dur, max(1, *rounds), prof)
	case "policy":
		err = runPolicy(ctx, cl, *weft, *n, min(*conc, 8), *fast, *slow)
	default:
		err = fmt.Errorf("mode %q is not wrk, grpc or policy", *mode)
	}
	if err != nil {
		cl.Run()
		log.Fatal(err)
	}
}

func runGRPC(ctx context.Context, cl *benchproc.Cleanups, weft, haproxy string, conc int, dur time.Duration, rounds int, prof *profiler) error {
	srv, err := grpctest.Start("server", nil)
	if err != nil {
		return err
	}
	cl.Add(srv.Stop)
	wl, _, err := weftHTTPPath(ctx, cl, weft, srv.Addr, prof)
	if err != nil {
		return err
	}
	hp, _, err := startHAProxyPair(ctx, cl, haproxy, srv.Addr, true)
	if err != nil {
		return err
	}
	targets := []struct{ name, addr string }{{"direct", srv.Addr}, {"weft", wl}, {"haproxy", hp}}
	fmt.Printf("gRPC unary (grpc-go, empty payload), one client connection, %d concurrent RPCs, %v per run, %d rounds rotating the order\n", conc, dur, rounds)
	fmt.Printf("  weft:    h2c -> site a -> link -> site b -> h2c server\n")
	fmt.Printf("  haproxy: h2c -> HAProxy a (mode http) -> h2 over mutual TLS 1.3 -> HAProxy b -> h2c server (%s)\n\n", benchproc.HAProxyVersion(haproxy))
	fmt.Printf("%-8s %10s %10s %10s\n", "path", "RPC/s", "p50", "p99")
	rates := map[string][]float64{}
	for r := range rounds {
		for i := range targets {
			t := targets[(i+r)%len(targets)]
			var rate float64
			var lat []time.Duration
			load := func() error {
				var err error
				rate, lat, err = unaryLoad(ctx, t.addr, conc, dur)
				return err
			}
			if err := prof.round("grpc", t.name, r, rounds, dur-2*time.Second, load); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			rates[t.name] = append(rates[t.name], rate)
			fmt.Printf("%-8s %10.0f %10v %10v\n", t.name, rate, quantile(lat, 0.5), quantile(lat, 0.99))
		}
	}
	ratios := make([]float64, rounds)
	for i := range ratios {
		ratios[i] = rates["weft"][i] / rates["haproxy"][i]
	}
	slices.Sort(ratios)
	fmt.Printf("\nweft/haproxy RPC/s, median of the per-round ratios: %.2f\n", ratios[len(ratios)/2])
	return nil
}

// weftHTTPPath runs sites a and b linked, with an http connector at b to
// target and an http listener at a, and returns the listener's address.
func weftHTTPPath(ctx context.Context, cl *benchproc.Cleanups, weft, target string, prof *profiler) (string, []*benchproc.Proc, error) {
	a, b, procs, err := benchproc.WeftPairEnv(ctx, cl, weft, prof.env)
	if err != nil {
		return "", nil, err
	}
	if _, err := benchproc.WeftCLI(ctx, weft, b, "connector", "create", "web", "--target", target, "--protocol", "http"); err != nil {
		return "", nil, err
	}
	var l struct{ Listen string }
	out, err := benchproc.WeftCLI(ctx, weft, a, "listener", "create", "web", "--port", "0", "--protocol", "http", "--wait", "20s", "-o", "json")
	if err != nil {
		return "", nil, err
	}
	if err := json.Unmarshal(out, &l); err != nil {
		return "", nil, err
	}
	return l.Listen, procs, nil
}

// unaryLoad calls UnaryCall on one connection to addr from conc
// goroutines for dur (after a short warm-up) and returns the rate and
// each call's latency.
func unaryLoad(ctx context.Context, addr string, conc int, dur time.Duration) (float64, []time.Duration, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, nil, err
	}
	defer cc.Close()
	tc := testpb.NewTestServiceClient(cc)
	run := func(d time.Duration) ([]time.Duration, error) {
		var (
			mu   sync.Mutex
			all  []time.Duration
			wg   sync.WaitGroup
			fail atomic.Pointer[error]
		)
		end := time.Now().Add(d)
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for time.Now().Before(end) {
					start := time.Now()
					if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
						fail.Store(&err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if e := fail.Load(); e != nil {
			return nil, *e
		}
		return all, nil
	}
	if _, err := run(dur / 5); err != nil {
		return 0, nil, err
	}
	start := time.Now()
	lat, err := run(dur)
	if err != nil {
		return 0, nil, err
	}
	return float64(len(lat)) / time.Since(start).Seconds(), lat, nil
}

func runPolicy(ctx context.Context, cl *benchproc.Cleanups, weft string, n, conc int, fast, slow time.Duration) error {
	cheap, costly := startDelayed(cl, slow), startDelayed(cl, fast)
	tmp, err := os.MkdirTemp("", "weft-bench-policy-")
	if err != nil {
		return err
	}
	cl.Add(func() { os.RemoveAll(tmp) })
	dirs := map[string]string{}
	for _, name := range []string{"a", "b", "c"} {
		dirs[name] = filepath.Join(tmp, name)
		if _, err := benchproc.StartWeftSite(ctx, cl, weft, name, dirs[name], nil, "--log-level", "warn"); err != nil {
			return err
		}
	}
	for peer, cost := range map[string]string{"b": "1", "c": "10"} {
		tok := filepath.Join(tmp, "token-"+peer+".yaml")
		if _, err := benchproc.WeftCLI(ctx, weft, dirs[peer], "token", "issue", "--file", tok); err != nil {
			return err
		}
		if _, err := benchproc.WeftCLI(ctx, weft, dirs["a"], "link", "create", tok, "--cost", cost); err != nil {
			return err
		}
	}
	for site, b := range map[string]*delayed{"b": cheap, "c": costly} {
		if _, err := benchproc.WeftCLI(ctx, weft, dirs[site], "connector", "create", "web", "--target", b.addr, "--protocol", "http"); err != nil {
			return err
		}
	}
	fmt.Printf("balance policy: ingress a -> b (cost 1, answers in %v) and c (cost 10, answers in %v)\n", slow, fast)
	fmt.Printf("closed loop, %d clients, %d GETs per policy after 200 to warm up; latency at the client\n\n", conc, n)
	fmt.Printf("%-13s %9s %9s %9s %9s\n", "balance", "to b", "to c", "p50", "p99")
	for _, pol := range []string{"cost", "latency"} {
		var l struct{ Listen string }
		out, err := benchproc.WeftCLI(ctx, weft, dirs["a"], "listener", "create", "web", "--name", "web-"+pol, "--port", "0",
			"--protocol", "http", "--balance", pol, "--wait", "20s", "-o", "json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal(out, &l); err != nil {
			return err
		}
		if err := waitSites(ctx, weft, dirs["a"], 2); err != nil {
			return err
		}
		url := "http://" + l.Listen + "/"
		if _, err := benchproc.GetLoad(url, 200, conc); err != nil {
			return err
		}
		cheap.hits.Store(0)
		costly.hits.Store(0)
		lat, err := benchproc.GetLoad(url, n, conc)
		if err != nil {
			return err
		}
		total := float64(cheap.hits.Load() + costly.hits.Load())
		fmt.Printf("%-13s %8.1f%% %8.1f%% %9v %9v\n", pol, 100*float64(cheap.hits.Load())/total, 100*float64(costly.hits.Load())/total,
			quantile(lat, 0.5), quantile(lat, 0.99))
	}
	return nil
}

// waitSites waits until the site at dir sees web served at want sites.
func waitSites(ctx context.Context, weft, dir string, want int) error {
	return benchproc.Poll(ctx, 20*time.Second, "web to be served at both sites", func() error {
		out, err := benchproc.WeftCLI(ctx, weft, dir, "status", "-o", "json")
		if err != nil {
			return err
		}
		var st struct {
			Addresses []struct {
				Address string
				Sites   []struct{ Name string }
			}
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return err
		}
		for _, a := range st.Addresses {
			if a.Address == "web" && len(a.Sites) == want {
				return nil
			}
		}
		return fmt.Errorf("web not served at %d sites yet", want)
	})
}

type delayed struct {
	addr string
	hits atomic.Int64
}

// startDelayed serves small answers after delay.
func startDelayed(cl *benchproc.Cleanups, delay time.Duration) *delayed {
	d := &delayed{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	d.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "ok\n")
	})}
	go srv.Serve(ln)
	cl.Add(func() { srv.Close() })
	return d
}

func quantile(lat []time.Duration, q float64) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))].Round(10 * time.Microsecond)
}
