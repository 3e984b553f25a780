// Command grpc measures gRPC and the latency balance policy through weft.
//
// Mode grpc: unary RPCs from one client connection with -c concurrent
// calls (32) for -d, to a grpc-go server (internal/service/grpctest)
// directly, through weft (listener at site a, connector at site b, both
// --protocol http, h2c end to end) and through HAProxy (mode http, proto
// h2 both sides) as the reference proxy. Reports RPCs/s, p50 and p99.
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
	mode := flag.String("mode", "grpc", "grpc or policy")
	weft := flag.String("weft", "weft", "weft binary")
	conc := flag.Int("c", 32, "grpc: concurrent RPCs on the one client connection; policy: concurrent HTTP clients")
	dur := flag.Duration("d", 10*time.Second, "grpc: duration of each run")
	haproxy := flag.String("haproxy", "haproxy", "grpc: HAProxy binary (empty: skip)")
	n := flag.Int("n", 2000, "policy: requests per policy")
	fast := flag.Duration("fast", 5*time.Millisecond, "policy: the costly candidate's answer time")
	slow := flag.Duration("slow", 50*time.Millisecond, "policy: the cheap candidate's answer time")
	flag.Parse()

	cl := &benchproc.Cleanups{}
	defer cl.Run()
	ctx := context.Background()
	var err error
	switch *mode {
	case "grpc":
		err = runGRPC(ctx, cl, *weft, *haproxy, *conc, *dur)
	case "policy":
		err = runPolicy(ctx, cl, *weft, *n, min(*conc, 8), *fast, *slow)
	default:
		err = fmt.Errorf("mode %q is not grpc or policy", *mode)
	}
	if err != nil {
		cl.Run()
		log.Fatal(err)
	}
}

func runGRPC(ctx context.Context, cl *benchproc.Cleanups, weft, haproxy string, conc int, dur time.Duration) error {
	srv, err := grpctest.Start("server", nil)
	if err != nil {
		return err
	}
	cl.Add(srv.Stop)
	a, b, _, err := benchproc.WeftPair(ctx, cl, weft)
	if err != nil {
		return err
	}
	if _, err := benchproc.WeftCLI(ctx, weft, b, "connector", "create", "echo", "--target", srv.Addr, "--protocol", "http"); err != nil {
		return err
	}
	var l struct{ Listen string }
	out, err := benchproc.WeftCLI(ctx, weft, a, "listener", "create", "echo", "--port", "0", "--protocol", "http", "--wait", "20s", "-o", "json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, &l); err != nil {
		return err
	}
	targets := []struct{ name, addr string }{{"direct", srv.Addr}, {"weft", l.Listen}}
	if haproxy != "" {
		addr, err := startHAProxy(cl, haproxy, srv.Addr)
		if err != nil {
			return err
		}
		targets = append(targets, struct{ name, addr string }{"haproxy", addr})
	}
	fmt.Printf("gRPC unary (grpc-go, empty payload), one client connection, %d concurrent RPCs, %v per run\n\n", conc, dur)
	fmt.Printf("%-8s %10s %10s %10s\n", "path", "RPC/s", "p50", "p99")
	for _, t := range targets {
		rate, lat, err := unaryLoad(ctx, t.addr, conc, dur)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		fmt.Printf("%-8s %10.0f %10v %10v\n", t.name, rate, quantile(lat, 0.5), quantile(lat, 0.99))
	}
	return nil
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

// startHAProxy runs HAProxy in front of target with HTTP/2 (h2c) on both
// sides and returns where it listens.
func startHAProxy(cl *benchproc.Cleanups, bin, target string) (string, error) {
	port, err := benchproc.FreePort()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "weft-bench-haproxy-")
	if err != nil {
		return "", err
	}
	cl.Add(func() { os.RemoveAll(dir) })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`global
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend grpc
  bind %s proto h2
  default_backend server
backend server
  server s1 %s proto h2
`, addr, target)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", err
	}
	p, err := benchproc.Start(cl, "haproxy", bin, "-db", "-f", path)
	if err != nil {
		return "", err
	}
	return addr, benchproc.Poll(context.Background(), 10*time.Second, "haproxy to listen", func() error {
		if p.Exited() {
			return benchproc.Fatal(fmt.Errorf("haproxy exited: %s", p.Output()))
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
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
