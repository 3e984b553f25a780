package main

import (
	"context"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests keep the harness itself from rotting unnoticed. They assert no
// timings (the machines running them are shared and noisy), only that every
// measurement produced a number, that data arrived intact (the harness fails
// a run otherwise) and that no child process outlives a run.

var (
	weftOnce sync.Once
	weftDir  string
	weftErr  error
)

// buildWeft builds the weft binary, and the unsealed one the
// -weft-unsealed path runs, once for all tests of the package.
func buildWeft(t *testing.T) (weft, unsealed string) {
	t.Helper()
	weftOnce.Do(func() {
		weftDir, weftErr = os.MkdirTemp("", "bench-tcp-weft-")
		if weftErr != nil {
			return
		}
		for _, b := range [][]string{
			{"-o", filepath.Join(weftDir, "weft")},
			{"-tags", "weft_bench_unsealed", "-o", filepath.Join(weftDir, "weft-unsealed")},
		} {
			out, err := exec.Command("go", append(append([]string{"build"}, b...), "weft.dev/weft/cmd/weft")...).CombinedOutput()
			if err != nil {
				weftErr = err
				t.Logf("go build: %s", out)
				return
			}
		}
	})
	if weftErr != nil {
		t.Fatalf("building weft: %v", weftErr)
	}
	return filepath.Join(weftDir, "weft"), filepath.Join(weftDir, "weft-unsealed")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if weftDir != "" {
		os.RemoveAll(weftDir)
	}
	os.Exit(code)
}

func quickConfig(weft, haproxy string) config {
	return config{
		WeftBin: weft, HAProxyBin: haproxy,
		BulkBytes:    32 << 20,
		ConnDuration: time.Second, Dialers: 4,
		LatDuration: time.Second, LatConns: 32, ReqSize: 1024,
		Rounds: 1, Quick: true,
	}
}

func TestQuickRun(t *testing.T) {
	hap, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed, so the harness cannot run its reference path; " +
			"install it (apt-get install haproxy) or use bench/run-tcp.sh --quick, which does")
	}
	weft, unsealed := buildWeft(t)
	cfg := quickConfig(weft, hap)
	cfg.WeftUnsealedBin = unsealed
	cfg.HAProxyPlain = true
	cfg.Log = t.Output()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rep.Metrics {
		for _, p := range cfg.pathNames() {
			if v := m.Rounds[p]; len(v) != 1 || !(v[0] > 0) {
				t.Errorf("%s over %s: got %v, want one positive value", m.Key, p, v)
			}
		}
		for _, p := range []string{pathWeft, pathHAProxy, pathUnsealed, pathPlain} {
			if !(m.ProxyCores[p] > 0) {
				t.Errorf("%s over %s: proxy CPU %v, want positive (are the proxies' processes tracked?)", m.Key, p, m.ProxyCores[p])
			}
		}
	}
	// Failed attempts mean a path refused or reset connections: a
	// correctness problem, not a slow machine (each attempt may take 10 s).
	for p, n := range rep.ConnErrors {
		if n > 0 {
			t.Errorf("%s: %d failed connection attempts, first: %s", p, n, rep.FirstConnError[p])
		}
	}
	rep.writeTable(t.Output())
	if err := rep.writeJSON(filepath.Join(t.TempDir(), "r.json")); err != nil {
		t.Error(err)
	}
	assertNoChildren(t)
}

// TestFailureStopsChildren checks that a run which fails half-way (here: the
// HAProxy binary is unusable, after the weft sites are already up) stops
// what it started. It needs no HAProxy.
func TestFailureStopsChildren(t *testing.T) {
	weft, _ := buildWeft(t)
	cfg := quickConfig(weft, "/bin/false")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := run(ctx, cfg); err == nil || !strings.Contains(err.Error(), "haproxy") {
		t.Fatalf("run with a broken haproxy: err = %v, want a haproxy error", err)
	}
	assertNoChildren(t)
}

// assertNoChildren fails if any process whose parent is this test process is
// still alive (zombies included: run must also have waited for them).
func assertNoChildren(t *testing.T) {
	t.Helper()
	me := strconv.Itoa(os.Getpid())
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("cannot list processes: %v", err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == me { // f[1] is field 4, the parent's pid
			t.Errorf("child process %s %s still exists after the run", e.Name(), s[:i+1])
		}
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	if p := percentile(s, 50); p != 50 {
		t.Errorf("p50 = %d, want 50", p)
	}
	if p := percentile(s, 99); p != 99 {
		t.Errorf("p99 = %d, want 99", p)
	}
	if p := percentile(s[:1], 99); p != 1 {
		t.Errorf("p99 of one sample = %d, want 1", p)
	}
}

// TestBulkPatternDetectsReordering checks the property the bulk check relies
// on: swapping two blocks of the stream changes its CRC.
func TestBulkPatternDetectsReordering(t *testing.T) {
	p := newBulkPattern(3*bulkBlock + 100)
	var blocks [][]byte
	p.each(func(b []byte) error {
		blocks = append(blocks, append([]byte(nil), b...))
		return nil
	})
	if len(blocks) != 4 || len(blocks[3]) != 100 {
		t.Fatalf("got %d blocks, last of %d bytes; want 4, last of 100", len(blocks), len(blocks[len(blocks)-1]))
	}
	var sum uint32
	for _, i := range []int{0, 2, 1, 3} {
		sum = crc32.Update(sum, castagnoli, blocks[i])
	}
	if sum == p.sum {
		t.Error("reordered blocks give the same CRC as the stream")
	}
}
