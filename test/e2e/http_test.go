package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is an HTTP server standing for one instance of a service. Its
// handler answers with the backend's name unless a test replaced it.
type backend struct {
	name    string
	addr    string
	hits    atomic.Int64
	handler atomic.Pointer[http.HandlerFunc]
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if h := b.handler.Load(); h != nil {
			(*h)(w, r)
			return
		}
		fmt.Fprint(w, b.name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

// handle replaces the handler; nil restores the default one.
func (b *backend) handle(h http.HandlerFunc) {
	if h == nil {
		b.handler.Store(nil)
		return
	}
	b.handler.Store(&h)
}

// listenHTTP creates an http listener for address at s and returns its URL.
func (s *site) listenHTTP(address string, extra ...string) string {
	s.t.Helper()
	var v struct{ Listen string }
	args := append([]string{"listener", "create", address, "--port", "0", "--protocol", "http", "-o", "json"}, extra...)
	if err := json.Unmarshal([]byte(s.weft(args...)), &v); err != nil {
		s.t.Fatal(err)
	}
	return "http://" + v.Listen
}

// get fetches url with client and returns the status and body.
func get(client *http.Client, url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func waitServed(t *testing.T, s *site, address string, want ...string) {
	t.Helper()
	waitFor(t, 10*time.Second, s.name+" to see "+address+" served at "+strings.Join(want, ","), func() bool {
		return strings.Join(s.status().servedAt(address), ",") == strings.Join(want, ",")
	})
}

// TestHTTPOverflow is the APAN-50 experiment per request: a and b serve the
// same address, a's instance limited to one request at a time. One client
// at a time is always served at a, the cheaper site; three in parallel
// spill over to b; when load drops, requests come back to a.
func TestHTTPOverflow(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	a.linkTo(b)
	atA, atB := startBackend(t, "at-a"), startBackend(t, "at-b")
	a.weft("connector", "create", "web", "--target", atA.addr, "--protocol", "http", "--max-connections", "1", "--max-requests", "1")
	b.weft("connector", "create", "web", "--target", atB.addr, "--protocol", "http")
	url := a.listenHTTP("web")
	waitServed(t, a, "web", "a", "b")

	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 5 {
		code, body, err := get(client, url)
		if err != nil || code != 200 || body != "at-a" {
			t.Fatalf("sequential request %d: %d %q %v, want 200 at-a", i, code, body, err)
		}
	}

	// Both instances hold their requests until three have arrived, so the
	// three are in flight together.
	var arrived atomic.Int64
	all := make(chan struct{})
	hold := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if arrived.Add(1) == 3 {
				close(all)
			}
			select {
			case <-all:
			case <-time.After(10 * time.Second):
			}
			fmt.Fprint(w, name)
		}
	}
	atA.handle(hold("at-a"))
	atB.handle(hold("at-b"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := map[string]int{}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := get(client, url)
			if err != nil || code != 200 {
				t.Errorf("parallel request: %d %q %v", code, body, err)
				return
			}
			mu.Lock()
			served[body]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if served["at-a"] != 1 || served["at-b"] != 2 {
		t.Errorf("three parallel requests served %v, want 1 at a and 2 at b", served)
	}

	atA.handle(nil)
	atB.handle(nil)
	if code, body, err := get(client, url); err != nil || code != 200 || body != "at-a" {
		t.Errorf("after the burst: %d %q %v, want at-a again", code, body, err)
	}
}
