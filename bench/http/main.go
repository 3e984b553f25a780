// Command http measures what hedging buys and costs through weft: an
// ingress site a linked to sites b and c, each serving address web with one
// backend; c's backend has a slow tail (a share of its answers delayed).
// For each hedge mode a closed-loop Go load generator sends GETs through a
// listener at a and reports client latency percentiles and how many
// requests the backends served per client request.
//
// Run it through bench/run-http.sh, which builds the weft binary.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
)

func main() {
	weft := flag.String("weft", "weft", "weft binary")
	n := flag.Int("n", 3000, "requests per hedge mode")
	conc := flag.Int("c", 4, "concurrent clients")
	tail := flag.Float64("tail", 0.05, "share of the slow backend's answers that are delayed")
	delay := flag.Duration("delay", 200*time.Millisecond, "the delay of those answers")
	modes := flag.String("modes", "off,always,auto", "hedge modes to compare, in order")
	both := flag.Bool("both", false, "give both backends the slow tail, so that the balancer cannot steer around it")
	flag.Parse()

	dir, err := os.MkdirTemp("", "weft-bench-http-")
	check(err)
	defer os.RemoveAll(dir)

	fastTail := 0.0
	if *both {
		fastTail = *tail
	}
	fast := startBackend(fastTail, *delay)
	slow := startBackend(*tail, *delay)
	a, b, c := startSite(*weft, dir, "a"), startSite(*weft, dir, "b"), startSite(*weft, dir, "c")
	defer a.stop()
	defer b.stop()
	defer c.stop()
	a.link(b)
	a.link(c)
	b.run("connector", "create", "web", "--target", fast.addr, "--protocol", "http")
	c.run("connector", "create", "web", "--target", slow.addr, "--protocol", "http")
	urls := map[string]string{}
	for _, m := range strings.Split(*modes, ",") {
		var v struct{ Listen string }
		check(json.Unmarshal([]byte(a.run("listener", "create", "web", "--name", "web-"+m, "--port", "0", "--protocol", "http", "--hedge", m, "-o", "json")), &v))
		urls[m] = "http://" + v.Listen + "/"
	}
	waitServed(a)

	fmt.Printf("weft HTTP hedging: ingress a -> {b: backend with %.0f%%, c: backend with %.0f%% of answers delayed %v}\n", fastTail*100, *tail*100, *delay)
	fmt.Printf("closed loop, %d clients, %d GETs per mode, keep-alive; latency at the client\n\n", *conc, *n)
	fmt.Printf("%-8s %9s %9s %9s %9s %9s %10s %14s\n", "hedge", "p50", "p90", "p99", "p99.9", "max", "req/s", "backend/req")
	first := true
	for _, m := range strings.Split(*modes, ",") {
		if first {
			load(urls[m], 300, *conc) // warm up pools and latency estimates
			first = false
		}
		fast.hits.Store(0)
		slow.hits.Store(0)
		start := time.Now()
		lat := load(urls[m], *n, *conc)
		took := time.Since(start)
		slices.Sort(lat)
		q := func(p float64) time.Duration {
			return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(10 * time.Microsecond)
		}
		backend := float64(fast.hits.Load()+slow.hits.Load()) / float64(*n)
		fmt.Printf("%-8s %9v %9v %9v %9v %9v %10.0f %14.2f\n", m, q(0.5), q(0.9), q(0.99), q(0.999), lat[len(lat)-1].Round(10*time.Microsecond), float64(*n)/took.Seconds(), backend)
	}
	fmt.Println("\nbackend/req: requests that reached a backend per client request (hedge copies cancelled before arriving are not counted)")
}

// load sends n GETs to url from conc clients, one at a time each, and
// returns their latencies.
func load(url string, n, conc int) []time.Duration {
	lat, err := benchproc.GetLoad(url, n, conc)
	check(err)
	return lat
}

type backend struct {
	addr string
	hits atomic.Int64
}

// startBackend serves small answers, delaying a share tail of them by
// delay; a request cancelled while delayed ends at once, as a real server's
// work would be abandoned.
func startBackend(tail float64, delay time.Duration) *backend {
	b := &backend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	b.addr = ln.Addr().String()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if tail > 0 && rand.Float64() < tail {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "ok\n")
	}))
	return b
}

type site struct {
	weft, dir string
	cmd       *exec.Cmd
}

func startSite(weft, root, name string) *site {
	s := &site{weft: weft, dir: filepath.Join(root, name)}
	s.cmd = exec.Command(weft, "site", "run", "--name", name, "--data", s.dir, "--log-level", "warn")
	s.cmd.Stderr = os.Stderr
	check(s.cmd.Start())
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(s.dir, "admin.addr")); err == nil {
			if resp, err := http.Get("http://" + string(b) + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return s
				}
			}
		}
		if time.Now().After(deadline) {
			log.Fatalf("site %s did not get ready", name)
		}
		time.Sleep(50 * time.Millisecond) // polling a process we do not control
	}
}

func (s *site) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

func (s *site) run(args ...string) string {
	out, err := exec.Command(s.weft, append([]string{"--site", s.dir}, args...)...).CombinedOutput()
	if err != nil {
		log.Fatalf("weft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// link makes a link from s to issuer.
func (s *site) link(issuer *site) {
	tok := filepath.Join(s.dir, "token-"+filepath.Base(issuer.dir)+".yaml")
	issuer.run("token", "issue", "--file", tok)
	s.run("link", "create", tok)
}

// waitServed waits until a sees web served at two sites.
func waitServed(a *site) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct {
			Addresses []struct {
				Address string
				Sites   []struct{ Name string }
			}
		}
		check(json.Unmarshal([]byte(a.run("status", "-o", "json")), &st))
		for _, ad := range st.Addresses {
			if ad.Address == "web" && len(ad.Sites) == 2 {
				return
			}
		}
		if time.Now().After(deadline) {
			log.Fatal("a never saw web served at b and c")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
