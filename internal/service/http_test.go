package service

import (
	"github.com/prometheus/client_golang/prometheus/testutil"

	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/resource"
)

// webWorld is a with an http listener for "web", linked to b and c at the
// given costs, each serving web with a backend of its own.
func webWorld(t *testing.T, costB, costC uint32, hedge string) (w *world, url string, atB, atC *backend) {
	w = newWorld(t, "a", "b", "c")
	w.link("a", "b", costB)
	w.link("a", "c", costC)
	atB, atC = startBackend(t, "at-b"), startBackend(t, "at-c")
	w.connector("b", httpConnector("web", "web", atB.addr))
	w.connector("c", httpConnector("web", "web", atC.addr))
	return w, "http://" + w.listener("a", httpListener("web", hedge)), atB, atC
}

func TestHTTPBalancesPerRequest(t *testing.T) {
	_, url, atB, atC := webWorld(t, 1, 1, "")
	client := newClient(t)
	for i := range 40 {
		if code, body, err := get(client, url); err != nil || code != 200 || !strings.HasPrefix(body, "at-") {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	// One client connection, requests on both sites.
	if atB.hits.Load() == 0 || atC.hits.Load() == 0 {
		t.Errorf("hits b=%d c=%d: requests of one connection were not balanced", atB.hits.Load(), atC.hits.Load())
	}
}

func TestHTTPOverloadOverflowsToNextTier(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	w.link("a", "b", 1)
	w.link("a", "c", 5)
	atB, atC := startBackend(t, "at-b"), startBackend(t, "at-c")
	limited := httpConnector("web", "web", atB.addr)
	limited.Spec.MaxRequests = 1
	w.connector("b", limited)
	w.connector("c", httpConnector("web", "web", atC.addr))
	url := "http://" + w.listener("a", httpListener("web", ""))
	client := newClient(t)

	release := make(chan struct{})
	atB.handle(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-atB.stop:
		}
		io.WriteString(rw, "at-b")
	})
	held := make(chan string, 1)
	go func() {
		_, body, _ := get(client, url)
		held <- body
	}()
	waitFor(t, "the first request to be held at b", func() bool { return atB.hits.Load() == 1 })

	// b is full: it answers 503 Weft-Overload without touching its
	// target, and a overflows to c, the costlier tier.
	if code, body, err := get(client, url); err != nil || code != 200 || body != "at-c" {
		t.Fatalf("second request: %d %q %v, want at-c", code, body, err)
	}
	if st := w.states("a", "web")["b"]; st.Errors != 0 {
		t.Errorf("b full counted as failing: %+v", st)
	}
	if n := testutil.ToFloat64(w.site("a").m.cfg.Metrics.Overflows.WithLabelValues("web")); n != 1 {
		t.Errorf("weft_balance_overflows_total{address=web} = %v, want 1", n)
	}
	close(release)
	if body := <-held; body != "at-b" {
		t.Errorf("held request: %q", body)
	}
	// With room again, the cheap tier serves.
	if _, body, _ := get(client, url); body != "at-b" {
		t.Errorf("after the burst: %q, want at-b", body)
	}
}

func TestHTTPOutlierEjectionAndReturn(t *testing.T) {
	w, url, atB, atC := webWorld(t, 1, 1, "")
	var recovered atomic.Bool
	atB.handle(func(rw http.ResponseWriter, r *http.Request) {
		if recovered.Load() {
			io.WriteString(rw, "at-b")
			return
		}
		http.Error(rw, "down", http.StatusServiceUnavailable)
	})
	client := newClient(t)
	waitFor(t, "b to be ejected at a", func() bool {
		get(client, url)
		return w.states("a", "web")["b"].Status == "ejected"
	})
	before := atB.hits.Load()
	for i := range 20 {
		if code, body, err := get(client, url); err != nil || code != 200 || body != "at-c" {
			t.Fatalf("request %d with b ejected: %d %q %v", i, code, body, err)
		}
	}
	if n := atB.hits.Load() - before; n != 0 {
		t.Errorf("ejected b got %d requests", n)
	}
	if atC.hits.Load() < 20 {
		t.Errorf("c got %d requests", atC.hits.Load())
	}

	// The ejection ends by the clock, not by traffic.
	recovered.Store(true)
	w.clock.Step(balance.DefaultBaseEjection)
	if st := w.states("a", "web")["b"]; st.Status != "ok" {
		t.Fatalf("after the ejection time b is %+v", st)
	}
	waitFor(t, "b to get requests again", func() bool {
		_, body, _ := get(client, url)
		return body == "at-b"
	})
}

func TestHTTPRetriesIdempotentRequests(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	w.link("a", "b", 1)
	w.link("a", "c", 5)
	atC := startBackend(t, "at-c")
	w.connector("b", httpConnector("web", "web", refusedAddr(t)))
	w.connector("c", httpConnector("web", "web", atC.addr))
	url := "http://" + w.listener("a", httpListener("web", ""))
	client := newClient(t)

	// b cannot reach its target and says so (502 Weft-Error): no byte
	// of an answer exists, so a GET or a PUT goes on to c.
	for _, method := range []string{"GET", "PUT"} {
		req, _ := http.NewRequest(method, url, strings.NewReader("body"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "at-c" {
			t.Errorf("%s: %s %q, want it retried at c", method, resp.Status, b)
		}
	}
	// A POST may have been acted on: never sent twice.
	hits := atC.hits.Load()
	resp, err := client.Post(url, "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || atC.hits.Load() != hits {
		t.Errorf("POST: %s, c hits %d -> %d; want b's 502 and no retry", resp.Status, hits, atC.hits.Load())
	}
	// Unless the client vouches for it.
	req, _ := http.NewRequest("POST", url, strings.NewReader("body"))
	req.Header.Set(HeaderHedge, "1")
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("POST with %s: %s, want it retried", HeaderHedge, resp.Status)
	}
}

func TestHTTPNoRetryOnceTheTargetAnswered(t *testing.T) {
	_, url, atB, atC := webWorld(t, 1, 5, "")
	client := newClient(t)

	// A 5xx from the target is its answer: returned, not retried.
	atB.handle(func(rw http.ResponseWriter, r *http.Request) { http.Error(rw, "oops", 500) })
	if code, _, err := get(client, url); err != nil || code != 500 {
		t.Errorf("5xx: %d %v", code, err)
	}
	// An answer that breaks after its first bytes cannot be retried
	// either: the client has them. (Streamed, so that every proxy on the
	// way passes the bytes on at once.)
	atB.handle(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, "partial")
		rw.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(rw).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	code, body, err := get(client, url)
	if code != 200 || body != "partial" || err == nil {
		t.Errorf("broken body: %d %q %v, want 200, the first bytes and an error", code, body, err)
	}
	if atB.hits.Load() != 2 || atC.hits.Load() != 0 {
		t.Errorf("hits b=%d c=%d, want 2 and 0", atB.hits.Load(), atC.hits.Load())
	}
}

// slowUntilCancelled makes b hold each request until its copy is
// cancelled, and reports the cancellations.
func slowUntilCancelled(b *backend) <-chan struct{} {
	cancelled := make(chan struct{}, 10)
	b.handle(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-b.stop:
		}
	})
	return cancelled
}

// slowAndFast makes slow hold every request until it is cancelled and
// fast answer once slow has the other copy, so that each loser is
// cancelled at slow's target rather than on its way there.
func slowAndFast(slow, fast *backend) <-chan struct{} {
	cancelled := slowUntilCancelled(slow)
	fast.handle(func(rw http.ResponseWriter, r *http.Request) {
		for slow.hits.Load() < fast.hits.Load() {
			select {
			case <-fast.stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		io.WriteString(rw, fast.name)
	})
	return cancelled
}

func TestHTTPHedgeAfterDelay(t *testing.T) {
	w, url, atB, atC := webWorld(t, 1, 2, "50ms")
	client := newClient(t)
	cancelled := slowUntilCancelled(atB)

	got := make(chan string, 1)
	go func() {
		code, body, err := get(client, url)
		got <- fmt.Sprint(code, " ", body, " ", err)
	}()
	// The primary goes to b, the cheaper site; the backup waits for the
	// hedge delay on the fake clock.
	waitFor(t, "the primary to reach b and the hedge timer to be set", func() bool {
		return atB.hits.Load() == 1 && w.clock.HasWaiters()
	})
	if atC.hits.Load() != 0 {
		t.Fatal("backup sent before the hedge delay")
	}
	w.clock.Step(50 * time.Millisecond)
	if r := <-got; r != "200 at-c <nil>" {
		t.Fatalf("hedged request: %s, want c's answer", r)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the losing primary was not cancelled at b's target")
	}
	if _, ok := atB.copies.Load("primary"); !ok {
		t.Error("b saw no Weft-Copy: primary")
	}
	if _, ok := atC.copies.Load("backup"); !ok {
		t.Error("c saw no Weft-Copy: backup")
	}
	// The loser ends in the balancer as cancelled: no strike.
	waitFor(t, "the loser to end at a", func() bool { return w.states("a", "web")["b"].InFlight == 0 })
	if st := w.states("a", "web")["b"]; st.Errors != 0 {
		t.Errorf("cancelled loser counted as an error: %+v", st)
	}

	// A primary that answers within the delay sends no backup.
	atB.handle(nil)
	if _, body, _ := get(client, url); body != "at-b" {
		t.Errorf("fast primary: %q", body)
	}
	if atC.hits.Load() != 1 {
		t.Errorf("c got %d copies, want only the earlier backup", atC.hits.Load())
	}
	waitFor(t, "the hedge timer to be stopped", func() bool { return !w.clock.HasWaiters() })
}

func TestHTTPHedgeAlways(t *testing.T) {
	w, url, atB, atC := webWorld(t, 1, 2, resource.HedgeAlways)
	client := newClient(t)
	cancelled := slowAndFast(atB, atC)
	for i := range 5 {
		if code, body, err := get(client, url); err != nil || code != 200 || body != "at-c" {
			t.Fatalf("request %d: %d %q %v, want the fast answer", i, code, body, err)
		}
	}
	waitFor(t, "every slow copy to be cancelled", func() bool { return len(cancelled) == 5 })
	if atC.hits.Load() != 5 {
		t.Errorf("c got %d copies, want 5", atC.hits.Load())
	}
	if n := testutil.ToFloat64(w.site("a").m.cfg.Metrics.Hedges.WithLabelValues("web")); n != 5 {
		t.Errorf("weft_http_hedges_total{address=web} = %v, want 5", n)
	}
}

func TestHTTPConnectorChanges(t *testing.T) {
	w := newWorld(t, "a", "b")
	w.link("a", "b", 1)
	x, y := startBackend(t, "x"), startBackend(t, "y")
	w.connector("b", httpConnector("web", "web", x.addr))
	web := "http://" + w.listener("a", httpListener("web", ""))
	api := "http://" + w.listener("a", httpListener("api", ""))
	client := newClient(t)
	if _, body, _ := get(client, web); body != "x" {
		t.Fatalf("before: %q", body)
	}
	w.connector("b", httpConnector("web", "web", y.addr))
	if _, body, _ := get(client, web); body != "y" {
		t.Errorf("after a new target: %q, want y", body)
	}
	// The connector moves to another address.
	w.connector("b", httpConnector("web", "api", x.addr))
	if code, _, _ := get(client, web); code != http.StatusServiceUnavailable {
		t.Errorf("web after its connector moved: %d, want 503", code)
	}
	if _, body, _ := get(client, api); body != "x" {
		t.Errorf("api: %q, want x", body)
	}
}

// TestHTTPHedgeTakesADisjointPath: the cheapest paths to b and c share
// the transit site t, and c has a costlier path through u. Every backup
// copy (to c, next to a primary to b through t) must go through u.
func TestHTTPHedgeTakesADisjointPath(t *testing.T) {
	w := newWorld(t, "a", "t", "u", "b", "c")
	w.link("a", "t", 1)
	w.link("t", "b", 1)
	w.link("t", "c", 2)
	w.link("a", "u", 2)
	w.link("u", "c", 2)
	var mu sync.Mutex
	paths := map[string]map[string]bool{} // site -> segment lists its streams came by
	for _, name := range []string{"b", "c"} {
		s := w.site(name)
		paths[name] = map[string]bool{}
		s.fs.SetDeliver(func(st *link.Stream, h *forward.Header) {
			var segs []string
			for _, id := range h.Segments {
				for _, x := range w.sites {
					if x.fs.ID == id {
						segs = append(segs, x.name)
					}
				}
			}
			mu.Lock()
			paths[name][strings.Join(segs, ",")] = true
			mu.Unlock()
			s.serve(st, h)
		})
	}
	atB, atC := startBackend(t, "at-b"), startBackend(t, "at-c")
	cancelled := slowAndFast(atB, atC)
	w.connector("b", httpConnector("web", "web", atB.addr))
	w.connector("c", httpConnector("web", "web", atC.addr))
	url := "http://" + w.listener("a", httpListener("web", resource.HedgeAlways))
	client := newClient(t)
	for i := range 5 {
		if code, body, err := get(client, url); err != nil || code != 200 || body != "at-c" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	waitFor(t, "every slow copy to be cancelled", func() bool { return len(cancelled) == 5 })
	mu.Lock()
	defer mu.Unlock()
	if len(paths["b"]) != 1 || !paths["b"]["t,b"] {
		t.Errorf("primaries reached b by %v, want t,b", paths["b"])
	}
	if len(paths["c"]) != 1 || !paths["c"]["u,c"] {
		t.Errorf("backups reached c by %v, want only u,c (disjoint from t,b)", paths["c"])
	}
}

// TestHTTPCountsBodyBytes: an http address's bytes are its requests' and
// answers' bodies, out and in as for a TCP connection.
func TestHTTPCountsBodyBytes(t *testing.T) {
	w := newWorld(t, "a", "b")
	w.link("a", "b", 1)
	atB := startBackend(t, "at-b")
	atB.handle(func(rw http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(rw, "read %d", n)
	})
	w.connector("b", httpConnector("web", "web", atB.addr))
	url := "http://" + w.listener("a", httpListener("web", ""))
	resp, err := newClient(t).Post(url, "text/plain", strings.NewReader(strings.Repeat("x", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "read 1000" {
		t.Fatalf("answer %q, want read 1000", body)
	}
	bytes := w.site("a").m.cfg.Metrics.AddressBytes
	// The handler adds its counts once it has written the answer, which
	// the client may have read already.
	waitFor(t, "a to count the answer", func() bool { return testutil.ToFloat64(bytes.WithLabelValues("web", "in")) > 0 })
	if out, in := testutil.ToFloat64(bytes.WithLabelValues("web", "out")), testutil.ToFloat64(bytes.WithLabelValues("web", "in")); out != 1000 || in != float64(len(body)) {
		t.Errorf("weft_address_bytes_total{address=web}: out %v in %v, want 1000 and %d", out, in, len(body))
	}
}
