//go:build unix

package service

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHTTPModeRequest is bench/run-http.sh --wrk's weft path in one
// process, for its allocations per request (b.ReportAllocs): keep-alive
// GETs on one client connection to a listener at a, answered with 3 bytes
// by a plain-text target behind a connector at b. The figures (also
// cpu-ns/op, the process's user and system CPU time per request) count
// both sites, the target and the client; compare them between revisions.
func BenchmarkHTTPModeRequest(b *testing.B) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	defer target.Close()
	w := newWorld(b, "a", "b")
	w.link("a", "b", 1)
	w.connector("b", httpConnector("web", "web", target.Listener.Addr().String()))
	c, err := net.Dial("tcp", w.listener("a", httpListener("web", "")))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	const req = "GET / HTTP/1.1\r\nHost: web\r\n\r\n"
	do := func() {
		if _, err := io.WriteString(c, req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		resp.Body.Close()
	}
	do() // opens the link stream and the target connection
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		do()
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
