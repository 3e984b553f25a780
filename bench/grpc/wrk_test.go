package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
)

const wrkSample = `Running 1s test @ http://127.0.0.1:1234/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   120.00us   50.00us   1.00ms   90.00%
    Req/Sec     8.00k   500.00     9.00k    70.00%
  Latency Distribution
     50%  110.00us
     75%  130.00us
     90%  160.00us
     99%    3.10ms
  8000 requests in 1.00s, 600.00KB read
Requests/sec:   7999.50
Transfer/sec:    599.00KB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk([]byte(wrkSample))
	if err != nil {
		t.Fatal(err)
	}
	if r.rate != 7999.5 || r.p99 != 3100*time.Microsecond {
		t.Errorf("got %v req/s, p99 %v; want 7999.5, 3.1ms", r.rate, r.p99)
	}
}

func TestParseWrkRefusesFailures(t *testing.T) {
	for _, bad := range []string{
		strings.Replace(wrkSample, "Requests/sec", "  Non-2xx or 3xx responses: 12\nRequests/sec", 1),
		strings.Replace(wrkSample, "Requests/sec", "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec", 1),
		strings.Replace(wrkSample, "     99%    3.10ms\n", "", 1),
		"unable to connect to 127.0.0.1:1 Connection refused\n",
	} {
		if _, err := parseWrk([]byte(bad)); err == nil {
			t.Errorf("no error for\n%s", bad)
		}
	}
}

// TestWrkAgainstTiny runs the real wrk against the harness's target, so
// that a wrk whose output no longer parses is noticed here.
func TestWrkAgainstTiny(t *testing.T) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk not installed (bench/run-http.sh --wrk installs it)")
	}
	cl := &benchproc.Cleanups{}
	defer cl.Run()
	addr, err := serveTiny(cl)
	if err != nil {
		t.Fatal(err)
	}
	r, err := wrkRun(wrk, addr, 1, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.rate <= 0 || r.p99 <= 0 {
		t.Errorf("got %v req/s, p99 %v", r.rate, r.p99)
	}
}
