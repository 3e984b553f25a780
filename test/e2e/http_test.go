package e2e

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
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

// waitServed waits until s sees address served at the sites named want.
func waitServed(t *testing.T, s *site, address string, want ...string) {
	t.Helper()
	slices.Sort(want)
	waitFor(t, 10*time.Second, s.name+" to see "+address+" served at "+strings.Join(want, ","), func() bool {
		got := s.status().servedAt(address)
		slices.Sort(got)
		return slices.Equal(got, want)
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

// TestHTTPEjection: of b's two instances of web, one answers 503. With short
// outlier settings it is ejected and every request goes to the other; after
// the ejection time, recovered, it gets requests again.
func TestHTTPEjection(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	a.linkTo(b)
	bad, good := startBackend(t, "bad"), startBackend(t, "good")
	bad.handle(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "unavailable", 503) })
	outlier := []string{"--protocol", "http", "--outlier-consecutive-errors", "2", "--outlier-base-ejection", "2s", "--outlier-interval", "1s"}
	b.weft(append([]string{"connector", "create", "web", "--name", "web-bad", "--target", bad.addr}, outlier...)...)
	b.weft(append([]string{"connector", "create", "web", "--name", "web-good", "--target", good.addr}, outlier...)...)
	url := a.listenHTTP("web")
	waitServed(t, a, "web", "b")

	client := &http.Client{Timeout: 5 * time.Second}
	var ejectedUntil time.Time
	waitFor(t, 10*time.Second, "web-bad to be ejected at b", func() bool {
		get(client, url)
		for _, in := range b.instances("web") {
			if in.Connector == "web-bad" && in.State == "ejected" {
				ejectedUntil = *in.EjectedUntil
				return true
			}
		}
		return false
	})
	t.Logf("web-bad ejected until %v (%v from now)", ejectedUntil, time.Until(ejectedUntil).Round(time.Millisecond))
	before := bad.hits.Load()
	for i := 0; time.Now().Add(300 * time.Millisecond).Before(ejectedUntil); i++ {
		if code, body, err := get(client, url); err != nil || code != 200 || body != "good" {
			t.Fatalf("request %d while web-bad is ejected: %d %q %v", i, code, body, err)
		}
	}
	if n := bad.hits.Load() - before; n != 0 {
		t.Errorf("the ejected instance got %d requests", n)
	}

	bad.handle(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "bad-recovered") })
	waitFor(t, 15*time.Second, "the recovered instance to get requests again", func() bool {
		_, body, _ := get(client, url)
		return body == "bad-recovered"
	})
}

type instanceState struct {
	Connector, State string
	EjectedUntil     *time.Time
}

// instances is s's status of its own http connectors for address.
func (s *site) instances(address string) []instanceState {
	s.t.Helper()
	var st struct {
		Addresses []struct {
			Address   string
			Instances []instanceState
		}
	}
	if err := json.Unmarshal([]byte(s.weft("status", "-o", "json")), &st); err != nil {
		s.t.Fatal(err)
	}
	for _, a := range st.Addresses {
		if a.Address == address {
			return a.Instances
		}
	}
	return nil
}

// TestHTTPHedge: b's instance holds each request until it is cancelled,
// c's answers at once. With --hedge always each request goes to both, on
// disjoint paths; the fast answer is returned and the slow copy is
// cancelled, which the slow server sees as its request context ending.
// The slow one never answers, rather than answering after a while: on a
// loaded machine c may be stalled for longer than any such while.
func TestHTTPHedge(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(b)
	a.linkTo(c)
	slow, fast := startBackend(t, "slow"), startBackend(t, "fast")
	var cancelled atomic.Int64
	var copies sync.Map
	slow.handle(func(w http.ResponseWriter, r *http.Request) {
		copies.Store("slow:"+r.Header.Get("Weft-Copy"), true)
		<-r.Context().Done() // the fast copy won, or the server closes
		cancelled.Add(1)
	})
	fast.handle(func(w http.ResponseWriter, r *http.Request) {
		copies.Store("fast:"+r.Header.Get("Weft-Copy"), true)
		fmt.Fprint(w, "fast")
	})
	b.weft("connector", "create", "web", "--target", slow.addr, "--protocol", "http")
	c.weft("connector", "create", "web", "--target", fast.addr, "--protocol", "http")
	url := a.listenHTTP("web", "--hedge", "always")
	waitServed(t, a, "web", "b", "c")

	client := &http.Client{Timeout: 5 * time.Second}
	const n = 20
	var lat []time.Duration
	for i := range n {
		start := time.Now()
		code, body, err := get(client, url)
		lat = append(lat, time.Since(start))
		if err != nil || code != 200 || body != "fast" {
			t.Fatalf("request %d: %d %q %v, want the fast answer", i, code, body, err)
		}
	}
	t.Logf("hedged latencies: %v", lat)
	// A slow copy may be cancelled before it reaches b at all; every one
	// that did must see its request context end.
	waitFor(t, 5*time.Second, "every slow copy to be cancelled", func() bool {
		return slow.hits.Load() > 0 && cancelled.Load() == slow.hits.Load()
	})
	t.Logf("%d of %d slow copies reached the slow instance, all cancelled", slow.hits.Load(), n)
	if fast.hits.Load() != n {
		t.Errorf("fast instance got %d copies, want %d", fast.hits.Load(), n)
	}
	for _, k := range []string{"slow:primary", "slow:backup", "fast:primary", "fast:backup"} {
		if _, ok := copies.Load(k); !ok {
			t.Errorf("no copy marked %s arrived", k)
		}
	}
}

// TestHTTPTwoHop: a reaches c's service through b with HTTP/1.1 (keep-alive,
// a chunked body, trace context), h2c with prior knowledge, and a WebSocket
// upgrade whose tunnel carries bytes both ways.
func TestHTTPTwoHop(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(b)
	b.linkTo(c)
	be := startBackend(t, "at-c")
	be.handle(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("Seen-Traceparent", r.Header.Get("Traceparent"))
			w.Header().Set("Seen-Proto", r.Proto)
			io.Copy(w, r.Body)
		case "/ws":
			websocketEcho(t, w, r)
		default:
			fmt.Fprint(w, "at-c")
		}
	})
	c.weft("connector", "create", "web", "--target", be.addr, "--protocol", "http")
	url := a.listenHTTP("web")
	waitServed(t, a, "web", "c")

	t.Run("http1", func(t *testing.T) {
		var conns, reused atomic.Int64
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		for i := range 3 {
			trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
				conns.Add(1)
				if ci.Reused {
					reused.Add(1)
				}
			}}
			// A reader of unknown length makes the body chunked.
			body := io.MultiReader(strings.NewReader("chunked "), strings.NewReader(fmt.Sprint(i)))
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", url+"/echo", body)
			if i == 2 {
				req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != fmt.Sprintf("chunked %d", i) {
				t.Errorf("echo %d = %q", i, got)
			}
			tp := resp.Header.Get("Seen-Traceparent")
			if i == 2 && tp != req.Header.Get("Traceparent") {
				t.Errorf("traceparent not passed through: %q", tp)
			}
			if i < 2 && (len(tp) != 55 || !strings.HasPrefix(tp, "00-")) {
				t.Errorf("no traceparent created: %q", tp)
			}
		}
		if reused.Load() != 2 {
			t.Errorf("%d of %d requests reused the client's connection, want 2", reused.Load(), conns.Load())
		}
	})

	t.Run("h2c", func(t *testing.T) {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Post(url+"/echo", "text/plain", strings.NewReader(fmt.Sprint("h2 ", i)))
				if err != nil {
					t.Error(err)
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != 2 || string(got) != fmt.Sprint("h2 ", i) {
					t.Errorf("h2c request %d: %s %q", i, resp.Proto, got)
				}
			}()
		}
		wg.Wait()
	})

	t.Run("websocket", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		key := "dGhlIHNhbXBsZSBub25jZQ=="
		fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: web\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
			t.Fatalf("upgrade answer: %s %v", resp.Status, resp.Header)
		}
		// Bytes both ways through the tunnel, several rounds.
		for i := range 3 {
			msg := fmt.Sprintf("frame %d\n", i)
			io.WriteString(conn, msg)
			line, err := br.ReadString('\n')
			if err != nil || line != msg {
				t.Fatalf("tunnel round %d: %q %v", i, line, err)
			}
		}
	})
}

// websocketEcho completes a WebSocket handshake and echoes what arrives: a
// WebSocket server as far as a proxy can tell.
func websocketEcho(t *testing.T, w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "not an upgrade", 400)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(r.Header.Get("Sec-WebSocket-Key")))
	brw.Flush()
	io.Copy(conn, brw)
}

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
