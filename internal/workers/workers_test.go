package workers

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goid is the running goroutine's ID, from its stack trace's header.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// waitIdle waits until n workers wait for a task, parked in their select
// (not only counted idle): only then does Go's send find one.
func waitIdle(t *testing.T, p *Pool, n int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 1<<20)
	for p.idle.Load() != n || parked(buf) != int(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle workers, %d parked, want %d", p.idle.Load(), parked(buf), n)
		}
		runtime.Gosched()
	}
}

// parked counts the workers blocked in run's select, from every
// goroutine's stack.
func parked(buf []byte) int {
	n := 0
	for _, g := range bytes.Split(buf[:runtime.Stack(buf, true)], []byte("\n\n")) {
		if bytes.Contains(g, []byte(" [select")) && bytes.Contains(g, []byte("workers.(*Pool).run(")) {
			n++
		}
	}
	return n
}

// run gives p a task and returns the ID of the goroutine that ran it.
func run(p *Pool) uint64 {
	ids := make(chan uint64)
	p.Go(func() { ids <- goid() })
	return <-ids
}

func TestReusesIdleWorker(t *testing.T) {
	p := New(4)
	defer p.Close()
	first := run(p)
	waitIdle(t, p, 1)
	if second := run(p); second != first {
		t.Fatalf("second task ran on goroutine %d, want the idle worker %d", second, first)
	}
}

func TestNoIdleWorkersBeyondMax(t *testing.T) {
	p := New(0)
	defer p.Close()
	first := run(p)
	// The first worker cannot be idle: it ended or is ending.
	if second := run(p); second == first {
		t.Fatalf("a pool keeping no idle worker reused goroutine %d", first)
	}
}

func TestCloseWaitsForTasksAndEndsIdleWorkers(t *testing.T) {
	p := New(8)
	release := make(chan struct{})
	var done sync.WaitGroup
	done.Add(3)
	for range 3 {
		p.Go(func() { <-release; done.Done() })
	}
	run(p) // a fourth that finishes and idles
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while tasks were running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	done.Wait()
	// goleak (TestMain) checks that no worker outlived Close.
}

func TestGoAfterClose(t *testing.T) {
	p := New(2)
	p.Close()
	ran := make(chan struct{})
	p.Go(func() { close(ran) })
	<-ran
	p.wg.Wait()
}

// deep uses about n KiB of stack.
//
//go:noinline
func deep(n int) byte {
	var pad [1024]byte
	if n == 0 {
		return pad[0]
	}
	pad[n%1024] = byte(n)
	return deep(n-1) + pad[(n+1)%1024]
}

// BenchmarkDeepTask runs tasks that need 32 KiB of stack on new
// goroutines and on a pool's workers.
func BenchmarkDeepTask(b *testing.B) {
	bench := func(b *testing.B, goFn func(func())) {
		var wg sync.WaitGroup
		for b.Loop() {
			wg.Add(1)
			goFn(func() { deep(32); wg.Done() })
			wg.Wait()
		}
	}
	b.Run("go", func(b *testing.B) { bench(b, func(f func()) { go f() }) })
	b.Run("pool", func(b *testing.B) {
		p := New(16)
		defer p.Close()
		bench(b, p.Go)
	})
}
