package service

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// ingressCases are the two kinds of candidate an HTTP listener's request
// goes to: a connector at the listener's own site (the target's
// transport, in process) and one at another site (framed streams).
var ingressCases = []struct {
	name  string
	at    string // the connector's site; the listener is at a
	local bool
}{{"local", "a", true}, {"remote", "b", false}}

// webAt starts sites a and b, a connector for "web" at site at and a
// listener for it at a, and returns the listener's URL and the backend.
func webAt(t *testing.T, at string) (string, *backend, *world) {
	w := newWorld(t, "a", "b")
	w.link("a", "b", 1)
	be := startBackend(t, "be")
	w.connector(at, httpConnector("web", "web", be.addr))
	return "http://" + w.listener("a", httpListener("web", "")), be, w
}

// The ingress passes on the fields of a request and of its answer, and
// their trailers, drops the hop-by-hop fields both ways, and sets the
// X-Forwarded-* fields itself.
func TestIngressHeadersAndTrailers(t *testing.T) {
	for _, tc := range ingressCases {
		t.Run(tc.name, func(t *testing.T) {
			url, be, _ := webAt(t, tc.at)
			var mu sync.Mutex
			seen := http.Header{}
			be.handle(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				for _, k := range []string{"X-Keep", "X-Hop", "Keep-Alive", "Connection", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Te", HeaderProto} {
					seen[k] = r.Header[k]
				}
				seen["User-Agent"] = r.Header["User-Agent"]
				seen["Body"] = []string{string(body)}
				seen["Req-Trailer"] = []string{r.Trailer.Get("X-Req-Trailer")}
				mu.Unlock()
				w.Header().Set("X-Answer", "yes")
				w.Header().Set("Connection", "X-Answer-Hop")
				w.Header().Set("X-Answer-Hop", "gone")
				w.Header().Set("Trailer", "X-Declared")
				io.WriteString(w, "answer")
				w.Header().Set("X-Declared", "d")
				w.Header().Set(http.TrailerPrefix+"X-Late", "l")
			})

			req, _ := http.NewRequest(http.MethodPost, url+"/p?q=1", io.NopCloser(strings.NewReader("request body")))
			req.ContentLength = -1 // chunked, so that it can carry a trailer
			req.Header.Set("X-Keep", "kept")
			req.Header.Set("Connection", "X-Hop")
			req.Header.Set("X-Hop", "gone")
			req.Header.Set("Forwarded", "for=6.6.6.6")
			req.Header.Set("X-Forwarded-For", "6.6.6.6")
			req.Header.Set("Te", "trailers")
			req.Header.Set("User-Agent", "")
			req.Trailer = http.Header{"X-Req-Trailer": {"t"}}
			resp, err := newClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != "answer" || resp.StatusCode != 200 {
				t.Fatalf("answer %s %q (%v), want 200 answer", resp.Status, body, err)
			}
			if got := resp.Header.Get("X-Answer"); got != "yes" {
				t.Errorf("answer field X-Answer = %q, want yes", got)
			}
			if got := resp.Header.Get("X-Answer-Hop"); got != "" {
				t.Errorf("the answer's hop-by-hop X-Answer-Hop = %q reached the client", got)
			}
			if got := resp.Trailer.Get("X-Declared"); got != "d" {
				t.Errorf("declared trailer X-Declared = %q, want d", got)
			}
			if got := resp.Trailer.Get("X-Late"); got != "l" {
				t.Errorf("undeclared trailer X-Late = %q, want l", got)
			}

			mu.Lock()
			defer mu.Unlock()
			want := map[string]string{
				"X-Keep": "kept", "X-Hop": "", "Connection": "", "Forwarded": "",
				"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": strings.TrimPrefix(url, "http://"),
				"X-Forwarded-Proto": "http", "Te": "trailers", HeaderProto: "",
				"Body": "request body", "Req-Trailer": "t",
			}
			for k, v := range want {
				if got := strings.Join(seen[k], ","); got != v {
					t.Errorf("the target saw %s %q, want %q", k, got, v)
				}
			}
			if ua := seen["User-Agent"]; len(ua) > 1 || len(ua) == 1 && ua[0] != "" {
				t.Errorf("the target saw User-Agent %q, want none", ua)
			}
		})
	}
}

// A request without a User-Agent reaches the target without one, not
// with Go's.
func TestIngressAddsNoUserAgent(t *testing.T) {
	for _, tc := range ingressCases {
		t.Run(tc.name, func(t *testing.T) {
			url, be, _ := webAt(t, tc.at)
			uas := make(chan []string, 1)
			be.handle(func(w http.ResponseWriter, r *http.Request) { uas <- r.Header["User-Agent"] })
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header["User-Agent"] = nil // Go's client sends none
			resp, err := newClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if ua := <-uas; len(ua) > 0 && ua[0] != "" {
				t.Errorf("the target saw User-Agent %q, want none", ua)
			}
		})
	}
}

// An answer that breaks after its head reaches the client as a broken
// answer, not as a shorter whole one.
func TestIngressAbortsABrokenAnswer(t *testing.T) {
	for _, tc := range ingressCases {
		t.Run(tc.name, func(t *testing.T) {
			url, be, _ := webAt(t, tc.at)
			be.handle(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "partial")
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler) // the target's connection ends mid-answer
			})
			resp, err := newClient(t).Get(url)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Fatalf("a broken answer read as a whole one: %s %q", resp.Status, body)
			}
		})
	}
}

// Informational answers from a target at the listener's site reach the
// client before the final one.
func TestIngressPassesEarlyHints(t *testing.T) {
	url, be, _ := webAt(t, "a")
	be.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "done")
	})
	var hints []string
	tr := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := newClient(t).Do(req.WithContext(httptrace.WithClientTrace(req.Context(), tr)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "done" || len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload" {
		t.Errorf("answer %q after informational answers %q, want done after one 103 with the Link", body, hints)
	}
	if resp.Header.Get("Link") != "" {
		t.Errorf("the 103's Link stayed on the final answer")
	}
}

// Requests are counted by status code and method as promhttp named them,
// with one duration each.
func TestIngressMetrics(t *testing.T) {
	url, be, w := webAt(t, "b")
	be.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "ok")
	})
	client := newClient(t)
	for range 2 {
		if code, _, err := get(client, url); err != nil || code != 200 {
			t.Fatalf("GET: %d %v", code, err)
		}
	}
	for _, m := range []string{http.MethodPost, "BREW"} {
		req, _ := http.NewRequest(m, url+"/missing", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	met := w.site("a").m.cfg.Metrics
	want := map[[2]string]float64{{"200", "get"}: 2, {"404", "post"}: 1, {"404", "unknown"}: 1}
	waitFor(t, "a to count the requests", func() bool { return testutil.CollectAndCount(met.HTTPRequests) == len(want) })
	for l, n := range want {
		if got := testutil.ToFloat64(met.HTTPRequests.WithLabelValues("web", l[0], l[1])); got != n {
			t.Errorf("weft_http_requests_total{code=%s,method=%s} = %v, want %v", l[0], l[1], got, n)
		}
	}
	if n := testutil.CollectAndCount(met.HTTPDuration); n != len(want) {
		t.Errorf("weft_http_request_duration_seconds has %d series, want %d", n, len(want))
	}
}

// A request that asks for an upgrade the target refuses gets the
// target's answer; one that the target takes becomes a tunnel.
func TestIngressUpgrade(t *testing.T) {
	for _, tc := range ingressCases {
		t.Run(tc.name, func(t *testing.T) {
			url, be, _ := webAt(t, tc.at)
			be.handle(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Upgrade") != "echo" {
					http.Error(w, "no upgrade", http.StatusBadRequest)
					return
				}
				c, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer c.Close()
				brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
				brw.Flush()
				line, _ := brw.ReadString('\n')
				io.WriteString(c, "echo "+line)
			})
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "echo")
			tr := &http.Transport{} // not a Client, whose timeout hides the tunnel's Write
			defer tr.CloseIdleConnections()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade answered %s", resp.Status)
			}
			rw, ok := resp.Body.(io.ReadWriteCloser)
			if !ok {
				t.Fatal("a 101 answer's body is not the tunnel")
			}
			io.WriteString(rw, "hello\n")
			line, err := bufio.NewReader(rw).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) || line != "echo hello\n" {
				t.Errorf("through the tunnel: %q %v, want echo hello", line, err)
			}
		})
	}
}
