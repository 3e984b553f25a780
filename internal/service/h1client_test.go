package service

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startScripted starts a target that answers each request on a
// connection with what answer returns, written as it is; close ends the
// connection after it.
func startScripted(t *testing.T, answer func(r *http.Request) (raw string, close bool)) *tcpServer {
	return startTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			raw, end := answer(r)
			if _, err := io.WriteString(c, raw); err != nil || end {
				return
			}
		}
	})
}

func newH1Client(t *testing.T, target string, max int) *h1Client {
	d := &net.Dialer{}
	cl := &h1Client{target: target, dial: d.DialContext, now: time.Now, max: max}
	t.Cleanup(cl.CloseIdleConnections)
	return cl
}

func h1Request(t *testing.T, ctx context.Context, method, target string, body io.Reader) *http.Request {
	r, err := http.NewRequestWithContext(ctx, method, "http://"+target+"/p", body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fetch sends a request and reads its whole answer.
func fetch(cl *h1Client, r *http.Request) (*http.Response, string, error) {
	resp, err := cl.RoundTrip(r)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func TestH1ClientAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, method, answer string
		close                bool // the target closes after answering
		body                 string
		trailer              string // X-T's value
		informed             []int  // the 1xx answers passed on
		reused               bool   // the next request goes on the same connection
	}{
		{name: "content-length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", body: "abc", reused: true},
		{name: "chunked with trailer", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: v\r\n\r\n",
			body: "abcde", trailer: "v", reused: true},
		{name: "head", method: http.MethodHead, answer: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", reused: true},
		{name: "204", answer: "HTTP/1.1 204 No Content\r\n\r\n", reused: true},
		{name: "304 with a length", answer: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", reused: true},
		{name: "connection close", answer: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", body: "ok"},
		{name: "body until close", answer: "HTTP/1.1 200 OK\r\n\r\nall of it", close: true, body: "all of it"},
		{name: "http/1.0", answer: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", body: "ok"},
		{name: "informational first", answer: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			body: "ok", informed: []int{100, 103}, reused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := startScripted(t, func(*http.Request) (string, bool) { return tc.answer, tc.close })
			cl := newH1Client(t, target.addr, 0)
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			for i := range 2 {
				var informed []int
				ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
					Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
						informed = append(informed, code)
						return nil
					},
				})
				resp, body, err := fetch(cl, h1Request(t, ctx, method, target.addr, nil))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if body != tc.body || resp.Trailer.Get("X-T") != tc.trailer || len(informed) != len(tc.informed) {
					t.Fatalf("request %d: body %q, trailer %q, informed %v; want %q, %q, %v", i, body, resp.Trailer.Get("X-T"), informed, tc.body, tc.trailer, tc.informed)
				}
			}
			want := int64(2)
			if tc.reused {
				want = 1
			}
			if n := target.conns.Load(); n != want {
				t.Fatalf("%d connections for two requests, want %d", n, want)
			}
		})
	}
}

// A target's answer that cannot be read fails its request, and only it:
// the next request gets a new connection.
func TestH1ClientBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		inBody       bool // the head is fine: the body fails
	}{
		{name: "not http", answer: "garbage\r\n\r\n"},
		{name: "bad status", answer: "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"},
		{name: "bad header line", answer: "HTTP/1.1 200 OK\r\nno colon\r\n\r\n"},
		{name: "two lengths", answer: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{name: "unasked upgrade", answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"},
		{name: "too many informational", answer: strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", h1Max1xx+1) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{name: "head too long", answer: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Long: "+strings.Repeat("a", 1000)+"\r\n", h1MaxHead/1000) + "\r\n"},
		{name: "cut head", answer: "HTTP/1.1 200 OK\r\nContent-Le"},
		{name: "bad chunk", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", inBody: true},
		{name: "cut body", answer: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", inBody: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			target := startScripted(t, func(*http.Request) (string, bool) {
				if n.Add(1) == 1 {
					return tc.answer, true
				}
				return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
			})
			cl := newH1Client(t, target.addr, 0)
			resp, err := cl.RoundTrip(h1Request(t, context.Background(), http.MethodPost, target.addr, nil))
			if tc.inBody {
				if err != nil {
					t.Fatalf("head failed: %v", err)
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatalf("no error; status %d", resp.StatusCode)
			}
			t.Logf("error: %v", err)
			_, body, err := fetch(cl, h1Request(t, context.Background(), http.MethodGet, target.addr, nil))
			if err != nil || body != "ok" {
				t.Fatalf("next request: %q, %v", body, err)
			}
		})
	}
}

// A target answering nonsense gets the client a 502 through two sites.
func TestHTTPMalformedTargetAnswerIs502(t *testing.T) {
	w := newWorld(t, "a", "b")
	w.link("a", "b", 1)
	target := startScripted(t, func(*http.Request) (string, bool) { return "HTTP/1.1 abc\r\n\r\n", true })
	w.connector("b", httpConnector("web", "web", target.addr))
	url := "http://" + w.listener("a", httpListener("web", ""))
	code, body, err := get(newClient(t), url)
	if err != nil || code != http.StatusBadGateway || !strings.Contains(body, `bad answer from the target: malformed HTTP status code "abc"`) {
		t.Fatalf("got %d %q, %v; want 502 naming the malformed status", code, body, err)
	}
}

// A connection the target closed while it was idle is not used again: a
// request that may not be sent twice is not sent on it (it is checked),
// and one that may is sent again.
func TestH1ClientSkipsClosedIdleConnection(t *testing.T) {
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			target := startScripted(t, func(*http.Request) (string, bool) {
				return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true
			})
			cl := newH1Client(t, target.addr, 0)
			for i := range 2 {
				r := h1Request(t, context.Background(), method, target.addr, nil)
				if i == 1 {
					// The target's close reaches the idle connection.
					waitFor(t, "the idle connection closed", func() bool { return !idleAlive(cl) })
				}
				if _, body, err := fetch(cl, r); err != nil || body != "ok" {
					t.Fatalf("request %d: %q, %v", i, body, err)
				}
			}
			if n := target.conns.Load(); n != 2 {
				t.Fatalf("%d connections, want 2", n)
			}
		})
	}
}

// An answer the target sends unasked on an idle connection (a 408 at its
// idle timeout) is never taken for a later request's, even a resendable
// one's, once the connection sat idle for h1CheckAfter.
func TestH1ClientUnaskedAnswer(t *testing.T) {
	unasked := make(chan struct{})
	var answered atomic.Bool
	// Each connection serves one request; the first then speaks unasked.
	target := startTCP(t, func(c net.Conn) {
		r, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if !answered.Swap(true) {
			select {
			case <-unasked:
				io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
			case <-t.Context().Done():
			}
		}
		io.Copy(io.Discard, c) // until the client closes
	})
	var skew atomic.Int64
	cl := newH1Client(t, target.addr, 0)
	cl.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	if _, body, err := fetch(cl, h1Request(t, context.Background(), http.MethodGet, target.addr, nil)); err != nil || body != "ok" {
		t.Fatalf("first request: %q, %v", body, err)
	}
	close(unasked)
	waitFor(t, "the unasked answer at the idle connection", func() bool { return !idleAlive(cl) })
	skew.Store(int64(h1CheckAfter))
	resp, body, err := fetch(cl, h1Request(t, context.Background(), http.MethodGet, target.addr, nil))
	if err != nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("second request: %v %q, %v; want 200 ok on a new connection", resp, body, err)
	}
	if n := target.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func idleAlive(cl *h1Client) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.idle) == 1 && connAlive(cl.idle[0].Conn)
}

// pipeTarget is a target over net.Pipe, whose connections cannot be
// peeked at: each answers one request and closes without saying so.
func pipeTarget(t *testing.T, dials *atomic.Int64) func(context.Context, string, string) (net.Conn, error) {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	return func(context.Context, string, string) (net.Conn, error) {
		dials.Add(1)
		c, s := net.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			if _, err := http.ReadRequest(bufio.NewReader(s)); err == nil {
				io.WriteString(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		}()
		return c, nil
	}
}

// A request that meets a dead reused connection before any byte of an
// answer goes again on a new one when it may be sent twice, and fails
// otherwise.
func TestH1ClientResendsOnDeadConnection(t *testing.T) {
	var dials atomic.Int64
	cl := &h1Client{target: "pipe", dial: pipeTarget(t, &dials), now: time.Now}
	defer cl.CloseIdleConnections()
	for _, method := range []string{http.MethodGet, http.MethodGet} {
		if _, body, err := fetch(cl, h1Request(t, context.Background(), method, "pipe", nil)); err != nil || body != "ok" {
			t.Fatalf("%s: %q, %v", method, body, err)
		}
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2", n)
	}
	if _, _, err := fetch(cl, h1Request(t, context.Background(), http.MethodPost, "pipe", nil)); err == nil {
		t.Fatal("a POST on a dead connection was sent again")
	}
}

// With max connections open, a request waits for one; one that ends
// while waiting leaves its place to the next.
func TestH1ClientMaxConnections(t *testing.T) {
	release := make(chan struct{})
	var inFlight, most atomic.Int64
	target := startBackend(t, "b")
	target.handle(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if r.URL.Query().Get("hold") != "" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	cl := newH1Client(t, target.addr, 1)
	r := h1Request(t, context.Background(), http.MethodGet, target.addr, nil)
	r.URL.RawQuery = "hold=1"
	first := make(chan error, 1)
	go func() {
		_, _, err := fetch(cl, r)
		first <- err
	}()
	waitFor(t, "the first request at the target", func() bool { return inFlight.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := cl.RoundTrip(h1Request(t, ctx, http.MethodGet, target.addr, nil))
		gaveUp <- err
	}()
	second := make(chan error, 1)
	waitFor(t, "a waiting request", func() bool { return waiters(cl) == 1 })
	go func() {
		_, body, err := fetch(cl, h1Request(t, context.Background(), http.MethodGet, target.addr, nil))
		if err == nil && body != "ok" {
			err = errors.New("body " + body)
		}
		second <- err
	}()
	waitFor(t, "two waiting requests", func() bool { return waiters(cl) == 2 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled request: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if most.Load() != 1 || target.hits.Load() != 2 {
		t.Fatalf("%d at once at the target, %d requests; want 1 and 2", most.Load(), target.hits.Load())
	}
}

func waiters(cl *h1Client) int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.waiters)
}

// A request that ends while its answer is awaited fails at once, and its
// connection is closed.
func TestH1ClientCancel(t *testing.T) {
	target := startBackend(t, "b")
	arrived := make(chan struct{})
	gone := make(chan struct{})
	target.handle(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(gone)
		case <-target.stop:
		}
	})
	cl := newH1Client(t, target.addr, 0)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := cl.RoundTrip(h1Request(t, ctx, http.MethodGet, target.addr, nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the request's cancellation", err)
	}
	<-gone
}

// A request body of unknown length streams in both directions: the
// target answers before the request ends, and its trailer reaches it.
func TestH1ClientStreamsBothWays(t *testing.T) {
	target := startBackend(t, "b")
	target.handle(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Trailer", "X-Got")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		buf := make([]byte, 64)
		for {
			n, err := r.Body.Read(buf)
			w.Write(buf[:n])
			http.NewResponseController(w).Flush()
			if err != nil {
				break
			}
		}
		w.Header().Set("X-Got", r.Trailer.Get("X-T"))
	})
	cl := newH1Client(t, target.addr, 0)
	pr, pw := io.Pipe()
	r := h1Request(t, context.Background(), http.MethodPost, target.addr, pr)
	r.Trailer = http.Header{"X-T": nil}
	resp, err := cl.RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for _, piece := range []string{"ping\n", "pong\n"} {
		io.WriteString(pw, piece)
		if got, err := br.ReadString('\n'); got != piece {
			t.Fatalf("echo %q, %v; want %q", got, err, piece)
		}
	}
	r.Trailer.Set("X-T", "end")
	pw.Close()
	if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
		t.Fatalf("after the request ended: %q, %v", rest, err)
	}
	if got := resp.Trailer.Get("X-Got"); got != "end" {
		t.Fatalf("the target saw trailer %q, want end", got)
	}
}

// Idle connections are closed once they expire.
func TestH1ClientIdleExpiry(t *testing.T) {
	target := startScripted(t, func(*http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	var now atomic.Int64
	cl := newH1Client(t, target.addr, 0)
	cl.now = func() time.Time { return time.Unix(now.Load(), 0) }
	if _, _, err := fetch(cl, h1Request(t, context.Background(), http.MethodGet, target.addr, nil)); err != nil {
		t.Fatal(err)
	}
	cl.mu.Lock()
	idle := cl.idle[0]
	cl.mu.Unlock()
	now.Add(int64(h1IdleTimeout/time.Second) - 1)
	cl.expire()
	if !idleAlive(cl) {
		t.Fatal("closed before it expired")
	}
	now.Add(1)
	cl.expire()
	if waiters(cl) != 0 || len(cl.idle) != 0 || connAlive(idle.Conn) {
		t.Fatal("an expired connection is still kept")
	}
	if _, _, err := fetch(cl, h1Request(t, context.Background(), http.MethodGet, target.addr, nil)); err != nil || target.conns.Load() != 2 {
		t.Fatalf("after expiry: %v, %d connections", err, target.conns.Load())
	}
}

// FuzzH1ClientAnswer feeds the client arbitrary bytes as a target's
// answer, twice on one client: it must fail or return a final answer, and
// never read more body than the target sent.
func FuzzH1ClientAnswer(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: v\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno",
		"HTTP/1.0 200 OK\r\n\r\nuntil the end",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"garbage",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		var wg sync.WaitGroup
		defer wg.Wait()
		dial := func(context.Context, string, string) (net.Conn, error) {
			c, s := net.Pipe()
			// A pipe holds no bytes: a target still writing the rest of an
			// answer the client took for whole would never read the next
			// request, where a socket would have buffered both.
			c.SetDeadline(time.Now().Add(5 * time.Second))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				if _, err := http.ReadRequest(bufio.NewReader(s)); err == nil {
					s.Write(answer)
				}
			}()
			return c, nil
		}
		cl := &h1Client{target: "fuzz", dial: dial, now: time.Now}
		defer cl.CloseIdleConnections()
		for range 2 {
			r, _ := http.NewRequest(http.MethodGet, "http://fuzz/", nil)
			resp, err := cl.RoundTrip(r)
			if err != nil {
				continue
			}
			if resp.StatusCode >= 100 && resp.StatusCode <= 199 {
				t.Fatalf("informational answer %d returned as final", resp.StatusCode)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n > int64(len(answer)) {
				t.Fatalf("read %d bytes of body from a %d-byte answer", n, len(answer))
			}
		}
	})
}

// writeHead writes what Request.Write would, as a server reads it.
func TestWriteHeadAsRequestWrite(t *testing.T) {
	mk := func(method, url string, edit func(r *http.Request)) *http.Request {
		r, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("X-Two", "one")
		r.Header.Add("X-Two", "  two ")
		if edit != nil {
			edit(r)
		}
		return r
	}
	for _, r := range []*http.Request{
		mk(http.MethodGet, "http://t/a/b?c=d&e", nil),
		mk(http.MethodHead, "http://t/", func(r *http.Request) { r.Header["User-Agent"] = []string{""} }),
		mk(http.MethodPost, "http://t/p", func(r *http.Request) { r.Header.Set("User-Agent", "ua/1") }),
		mk(http.MethodDelete, "http://t/p", func(r *http.Request) { r.Close = true }),
		mk(http.MethodOptions, "http://t/p", func(r *http.Request) { r.Close = true; r.Header.Set("Connection", "close") }),
		mk("PURGE", "http://t/%20x", func(r *http.Request) { r.Host = "other.example:8080" }),
		mk(http.MethodGet, "http://t/p", func(r *http.Request) { r.Header.Set("Content-Length", "5"); r.Header.Set("Trailer", "X") }),
	} {
		var lean, std bytes.Buffer
		bw := bufio.NewWriter(&lean)
		if !writeHead(bw, r) {
			t.Fatalf("%s %s: not written", r.Method, r.URL)
		}
		bw.Flush()
		if err := r.Write(&std); err != nil {
			t.Fatal(err)
		}
		leanText, stdText := lean.String(), std.String()
		got, err := http.ReadRequest(bufio.NewReader(&lean))
		if err != nil {
			t.Fatalf("%s %s: %v in %q", r.Method, r.URL, err, leanText)
		}
		want, err := http.ReadRequest(bufio.NewReader(&std))
		if err != nil {
			t.Fatal(err)
		}
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host ||
			got.ContentLength != want.ContentLength || got.Close != want.Close || !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("%s %s:\n%q\nwant\n%q", r.Method, r.URL, leanText, stdText)
		}
	}
	for _, r := range []*http.Request{
		mk(http.MethodPost, "http://t/", func(r *http.Request) { r.Body, r.ContentLength = io.NopCloser(strings.NewReader("x")), 1 }),
		mk(http.MethodGet, "http://t/", func(r *http.Request) { r.Trailer = http.Header{"X": nil} }),
		mk(http.MethodGet, "http://t/", func(r *http.Request) { r.Host = "bücher.example" }),
		mk(http.MethodGet, "http://[fe80::1%25eth0]:80/", nil),
	} {
		if writeHead(bufio.NewWriter(io.Discard), r) {
			t.Errorf("%s %s (host %q): written, want it left to Request.Write", r.Method, r.URL, r.Host)
		}
	}
}
