package service

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// leanPair starts sites a and b with a backend behind a connector at b,
// and two listeners for it at a: one with the lean server, one with
// net/http's alone. It returns their addresses.
func leanPair(t testing.TB) (lean, std string, be *backend, w *world) {
	w = newWorld(t, "a", "b")
	w.link("a", "b", 1)
	be = startBackend(t, "be")
	be.handle(scriptedAnswers)
	w.connector("b", httpConnector("web", "web", be.addr))
	lean = w.listener("a", httpListener("web", ""))
	leanHTTP1 = false
	defer func() { leanHTTP1 = true }()
	l := httpListener("web", "")
	l.Name = "web-std"
	std = w.listener("a", l)
	return lean, std, be, w
}

// leanServed is how many requests the lean server of site a's listener
// "web" served itself.
func leanServed(w *world) int64 {
	m := w.site("a").m
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.listeners["web"].h1.Load(); s != nil {
		return s.served.Load()
	}
	return 0 // not serving yet
}

// leanWorkers is how many worker goroutines the lean server of site a's
// listener "web" started.
func leanWorkers(w *world) int64 {
	m := w.site("a").m
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.listeners["web"].h1.Load().workers.Load()
}

// A request without body, with nothing sent after it, is answered by the
// reading goroutine, without a worker, at the listener's site and at the
// connector's (its framed stream); one with a body starts the worker.
func TestLeanServerAnswersInline(t *testing.T) {
	lean, _, _, w := leanPair(t)
	c := dial(t, lean)
	defer c.Close()
	br := bufio.NewReader(c)
	ask := func(raw, want string) {
		t.Helper()
		io.WriteString(c, raw)
		method, _, _ := strings.Cut(raw, " ")
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != want {
			t.Fatalf("%q: answer %q, %v; want %q", raw, body, err, want)
		}
	}
	for range 3 {
		ask("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n", "hello")
		ask("HEAD /plain HTTP/1.1\r\nHost: x\r\n\r\n", "")
	}
	if n, m := leanWorkers(w), w.site("b").m.frameWorkers.Load(); n != 0 || m != 0 {
		t.Fatalf("%d workers started at a, %d at b, for requests without body; want none", n, m)
	}
	ask("POST /plain HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", "hello")
	if n, m := leanWorkers(w), w.site("b").m.frameWorkers.Load(); n != 1 || m != 1 {
		t.Fatalf("%d workers started at a, %d at b, after a request with a body; want 1 each", n, m)
	}
	ask("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n", "hello")
}

// scriptedAnswers answers by path, with a fixed Date so that whole
// answers can be compared.
func scriptedAnswers(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Date", "Thu, 01 Jan 2026 00:00:00 GMT")
	switch r.URL.Path {
	case "/plain":
		h.Set("Content-Type", "text/plain")
		io.WriteString(w, "hello")
	case "/sniff": // no Content-Type: the listener's server sniffs one
		h["Content-Type"] = nil
		w.(http.Flusher).Flush() // unknown length at the ingress
		io.WriteString(w, "<html><body>hi</body></html>")
	case "/204":
		w.WriteHeader(http.StatusNoContent)
	case "/304":
		h.Set("Etag", `"x"`)
		w.WriteHeader(http.StatusNotModified)
	case "/big":
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", "5000")
		io.WriteString(w, strings.Repeat("b", 5000))
	case "/stream":
		h.Set("Content-Type", "text/plain")
		for i := range 3 {
			fmt.Fprintf(w, "piece %d\n", i)
			w.(http.Flusher).Flush()
		}
	case "/trailer":
		h.Set("Trailer", "X-Declared")
		h.Set("Content-Type", "text/plain")
		io.WriteString(w, "with trailers")
		w.(http.Flusher).Flush()
		h.Set("X-Declared", "d")
		h.Set(http.TrailerPrefix+"X-Late", "l")
	case "/echo":
		body, _ := io.ReadAll(r.Body)
		h.Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s %s len=%d body=%q trailer=%q xff=%q xfh=%q",
			r.Method, r.URL.RequestURI(), r.Proto, r.ContentLength, body, r.Trailer.Get("X-T"),
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"))
	default:
		http.NotFound(w, r)
	}
}

// dial connects to addr, with a deadline for all the test does on it.
func dial(t testing.TB, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// exchange sends raw on a new connection to addr, closes it for writing
// when half is set, and returns all the server sent until it closed the
// connection.
func exchange(t testing.TB, addr, raw string, half bool) string {
	c := dial(t, addr)
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	if half {
		c.(*net.TCPConn).CloseWrite()
	}
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("after %q: %v (read %q)", raw, err, b)
	}
	return string(b)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

var dateField = regexp.MustCompile(`Date: [^\r]*\r\n`)

const closeReq = "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

// leanCases are raw requests on one connection, each ending with one
// that makes the server close the connection, and the answers expected
// of both servers.
var leanCases = []struct {
	name, raw, want string
}{
	{"keep-alive and pipelining",
		"GET /plain HTTP/1.1\r\nHost: x\r\n\r\nGET /plain?a=1 HTTP/1.1\r\nHost: x\r\n\r\n" + closeReq,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\nhello" +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\nhello" +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nConnection: close\r\n\r\nhello"},
	{"HEAD",
		"HEAD /plain HTTP/1.1\r\nHost: x\r\n\r\n" + closeReq,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nConnection: close\r\n\r\nhello"},
	{"204 and 304",
		"GET /204 HTTP/1.1\r\nHost: x\r\n\r\nGET /304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n" +
			"HTTP/1.1 304 Not Modified\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nEtag: \"x\"\r\nConnection: close\r\n\r\n"},
	{"HTTP/1.0",
		"GET /plain HTTP/1.0\r\n\r\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\nhello"},
	{"HTTP/1.0 keep-alive",
		"GET /plain HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nConnection: keep-alive\r\n\r\nhello" +
			"HTTP/1.0 200 OK\r\nContent-Length: 5000\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nConnection: keep-alive\r\n\r\n" + strings.Repeat("b", 5000) +
			"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\npiece 0\npiece 1\npiece 2\n"},
	{"body with Content-Length, then pipelined",
		"POST /echo HTTP/1.1\r\nHost: h.example\r\nContent-Length: 5\r\n\r\nhello" + closeReq,
		"HTTP/1.1 200 OK\r\nContent-Length: 81\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n" +
			`POST /echo HTTP/1.1 len=5 body="hello" trailer="" xff="127.0.0.1" xfh="h.example"` +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nConnection: close\r\n\r\nhello"},
	{"chunked body with a trailer",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: v\r\n\r\n" + closeReq,
		"HTTP/1.1 200 OK\r\nContent-Length: 75\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n" +
			`POST /echo HTTP/1.1 len=-1 body="hello" trailer="v" xff="127.0.0.1" xfh="x"` +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nConnection: close\r\n\r\nhello"},
	{"Expect: 100-continue",
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello" + closeReq,
		"HTTP/1.1 100 Continue\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 73\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n" +
			`POST /echo HTTP/1.1 len=5 body="hello" trailer="" xff="127.0.0.1" xfh="x"` +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nConnection: close\r\n\r\nhello"},
	{"sniffed type, chunked",
		"GET /sniff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nContent-Type: text/html; charset=utf-8\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"1c\r\n<html><body>hi</body></html>\r\n0\r\n\r\n"},
	{"trailers",
		"GET /trailer HTTP/1.1\r\nHost: x\r\nTe: trailers\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nTrailer: X-Declared\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"d\r\nwith trailers\r\n0\r\nX-Declared: d\r\nX-Late: l\r\n\r\n"},
	{"not found, then HEAD of a long body",
		"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\nHEAD /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nX-Content-Type-Options: nosniff\r\n\r\n404 page not found\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nContent-Type: text/plain\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nConnection: close\r\n\r\n"},
}

// The lean server answers each case byte for byte as net/http's server
// did, and as written down.
func TestLeanServerFraming(t *testing.T) {
	lean, std, _, w := leanPair(t)
	for _, tc := range leanCases {
		t.Run(tc.name, func(t *testing.T) {
			before := leanServed(w)
			got := exchange(t, lean, tc.raw, false)
			if leanServed(w) == before {
				t.Error("served by net/http, not the lean server")
			}
			was := exchange(t, std, tc.raw, false)
			if got != was {
				t.Errorf("lean server %q\nnet/http    %q", got, was)
			}
			if got != tc.want {
				t.Errorf("lean server:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// A streamed answer goes out piece by piece as it comes: the client reads
// the first piece while the target still holds back the second.
func TestLeanServerStreamsPieces(t *testing.T) {
	lean, _, be, _ := leanPair(t)
	next := make(chan struct{})
	be.handle(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second")
	})
	c := dial(t, lean)
	io.WriteString(c, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.TransferEncoding == nil || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("Transfer-Encoding %q, want chunked", resp.TransferEncoding)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("first piece %q, %v", buf, err)
	}
	close(next)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	// And the connection serves the next request.
	io.WriteString(c, closeReq)
	if resp, err = http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("next request: %v", err)
	}
}

// A client that goes away cancels its request at the target.
func TestLeanServerClientGoneCancels(t *testing.T) {
	lean, _, be, _ := leanPair(t)
	arrived, cancelled := make(chan struct{}), make(chan struct{})
	be.handle(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
		close(cancelled)
	})
	c := dial(t, lean)
	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	waitClosed(t, "request at the target", arrived)
	c.Close()
	waitClosed(t, "cancellation at the target", cancelled)
}

func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s", what)
	}
}

// Malformed requests get net/http's own 400 (or 417, 431, 501, 505) and
// the connection is closed; the listener serves the next connection. A
// request whose body turns out malformed is answered 502 (the target got
// no whole request).
func TestLeanServerMalformed(t *testing.T) {
	lean, std, _, _ := leanPair(t)
	huge := "GET /plain HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("v", 1<<20+8<<10) + "\r\n\r\n"
	for _, tc := range []struct{ name, raw, status string }{
		{"garbage", "GARBAGE\r\n\r\n", "400 Bad Request"},
		{"no Host", "GET /plain HTTP/1.1\r\n\r\n", "400 Bad Request"},
		{"two Hosts", "GET /plain HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "400 Bad Request"},
		{"bad header name", "GET /plain HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", "400 Bad Request"},
		{"bad header value", "GET /plain HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", "400 Bad Request"},
		{"two lengths", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "400 Bad Request"},
		{"unknown transfer coding", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "501 Not Implemented"},
		{"other expectation", "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: fancy\r\nContent-Length: 1\r\n\r\nx", "417 Expectation Failed"},
		{"HTTP/2.0 in text", "GET /plain HTTP/2.0\r\nHost: x\r\n\r\n", "505 HTTP Version Not Supported"},
		{"head too large", huge, "431 Request Header Fields Too Large"},
		{"after a good request", "GET /plain HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n", "400 Bad Request"},
		{"bad chunk", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "502 Bad Gateway"},
		{"body cut short", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort", "502 Bad Gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Closed for writing when short (net/http waits for the 14
			// bytes of an h2c preface before it reads a first request) or
			// when the body is broken (else net/http waits for more).
			half := len(tc.raw) < 14 || tc.status == "502 Bad Gateway"
			got := exchange(t, lean, tc.raw, half)
			was := exchange(t, std, tc.raw, half)
			if !strings.Contains(got, "HTTP/1.1 "+tc.status) {
				t.Errorf("answer %q, want %s", got, tc.status)
			}
			if tc.status == "502 Bad Gateway" {
				// Why the request failed (the link stream closed, or
				// net/http cancelled the request on the body's EOF) is
				// timing: the answer's code is not.
				got, was = got[:len("HTTP/1.1 502")], was[:len("HTTP/1.1 502")]
			}
			if dateField.ReplaceAllString(got, "") != dateField.ReplaceAllString(was, "") {
				t.Errorf("lean server %q\nnet/http   %q", got, was)
			}
			if code, _, err := get(newClient(t), "http://"+lean+"/plain"); err != nil || code != http.StatusOK {
				t.Errorf("next connection: %d, %v", code, err)
			}
		})
	}
}

// A head longer than the lean server reads is served by net/http.
func TestLeanServerLongHeadHandedOver(t *testing.T) {
	lean, _, _, _ := leanPair(t)
	raw := "GET /echo HTTP/1.1\r\nHost: x\r\nX-Long: " + strings.Repeat("v", 3*h1sBufSize) + "\r\n\r\n" + closeReq
	got := exchange(t, lean, raw, false)
	if n := strings.Count(got, "HTTP/1.1 200 OK\r\n"); n != 2 || !strings.HasSuffix(got, "hello") {
		t.Fatalf("%d answers: %q", n, got)
	}
}

// A request head that does not arrive whole is cut off after the
// server's header timeout: here the timeout is the client's, and only
// the connection's first bytes are checked not to block other clients.
func TestLeanServerSlowHeadBlocksNoOne(t *testing.T) {
	lean, _, _, _ := leanPair(t)
	slow := dial(t, lean)
	io.WriteString(slow, "GET /plain HTTP/1.1\r\nHost: x\r\n") // and no end
	if code, body, err := get(newClient(t), "http://"+lean+"/plain"); err != nil || code != http.StatusOK || body != "hello" {
		t.Fatalf("%d %q %v", code, body, err)
	}
}

// Deleting the listener closes its idle connections at once, and lets a
// request in flight finish before closing its connection.
func TestLeanServerDrain(t *testing.T) {
	lean, _, be, w := leanPair(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	be.handle(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			close(arrived)
			<-release
		}
		io.WriteString(rw, "done")
	})
	idle := dial(t, lean)
	io.WriteString(idle, "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
	ibr := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(ibr, nil); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	busy := dial(t, lean)
	io.WriteString(busy, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	waitClosed(t, "request at the target", arrived)

	deleted := make(chan struct{})
	go func() {
		w.site("a").m.DeleteListener("web")
		close(deleted)
	}()
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	close(release)
	got, err := io.ReadAll(busy)
	if err != nil || !strings.HasSuffix(string(got), "\r\n\r\ndone") {
		t.Fatalf("request in flight: %q, %v", got, err)
	}
	waitClosed(t, "listener deleted", deleted)
}

// FuzzLeanServer feeds arbitrary bytes to the listener as a client's
// connection: the server answers or closes, never hangs, and every answer
// begins as an HTTP/1.x answer; the listener serves the next client.
func FuzzLeanServer(f *testing.F) {
	for _, tc := range leanCases {
		f.Add([]byte(tc.raw))
	}
	f.Add([]byte("GARBAGE\r\n\r\n"))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
	f.Add([]byte("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"))
	f.Add([]byte("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort"))
	lean, _, _, _ := leanPair(f)
	client := &http.Client{Timeout: 20 * time.Second}
	n := 0
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := exchange(t, lean, string(raw), true)
		if got != "" && !strings.HasPrefix(got, "HTTP/1.") && !strings.HasPrefix(string(raw), "PRI ") {
			t.Fatalf("answer %q", got)
		}
		if n++; n%50 == 0 {
			if code, _, err := get(client, "http://"+lean+"/plain"); err != nil || code != http.StatusOK {
				t.Fatalf("next client: %d, %v", code, err)
			}
		}
	})
}

// The ingress's own answers (no connector: 503) have no Content-Length
// of the target's: the server counts it, as net/http does.
func TestLeanServerOwnAnswer(t *testing.T) {
	_, _, _, w := leanPair(t)
	lean := w.listener("a", httpListener("nowhere", ""))
	leanHTTP1 = false
	l := httpListener("nowhere", "")
	l.Name = "nowhere-std"
	std := w.listener("a", l)
	leanHTTP1 = true
	raw := "GET /x HTTP/1.1\r\nHost: x\r\n\r\nHEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	got := dateField.ReplaceAllString(exchange(t, lean, raw, false), "")
	was := dateField.ReplaceAllString(exchange(t, std, raw, false), "")
	if got != was {
		t.Errorf("lean server %q\nnet/http    %q", got, was)
	}
	if !strings.HasPrefix(got, "HTTP/1.1 503 Service Unavailable\r\n") || !strings.Contains(got, "Content-Length: ") {
		t.Errorf("answer %q", got)
	}
}
