package controller_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"weft.dev/weft/internal/controller"
	"weft.dev/weft/internal/datadir"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// running is a controller.Run in a goroutine of the test.
type running struct {
	base   string // http://ADDR of its API
	cancel context.CancelFunc
	done   chan error
}

// run starts a controller on dir with a SQLite store and waits until its API
// listens. The test's cleanup stops it if the test has not.
func run(t *testing.T, dir string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- controller.Run(ctx, controller.Options{Data: dir, Listen: "127.0.0.1:0", Ready: func(a string) { addr <- a }})
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case a := <-addr:
		r.base = "http://" + a
	case err := <-r.done:
		r.done <- err // for stop
		t.Fatalf("Run ended before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the API did not listen within 30s")
	}
	return r
}

// stop cancels Run and returns its error; it may be called more than once.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
		return nil
	}
}

func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(r.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetrics checks that one listener serves both /metrics, with the engine's
// series and leadership, and the API.
func TestMetrics(t *testing.T) {
	r := run(t, t.TempDir())
	// SQLite leads at once, but the engine starts in its own goroutine.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := r.get(t, "/metrics")
		if code == http.StatusOK && strings.Contains(body, "weft_controller_leader 1") {
			for _, want := range []string{"weft_controller_failing_targets", "weft_controller_source_errors_total", "go_goroutines"} {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed leadership: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := r.get(t, "/v2/projects"); code != http.StatusUnauthorized {
		t.Errorf("GET /v2/projects without a token: %d, want 401 from the API behind the same listener", code)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestDataDirInUse checks that a second controller on a data directory stops
// at once, naming the holder, leaves the first one serving, and that the
// directory is free again once the first one has stopped.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	first := run(t, dir)

	// Bounded, so that a second controller that does run fails the test
	// instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := controller.Run(ctx, controller.Options{Data: dir, Listen: "127.0.0.1:0",
		Ready: func(string) { t.Error("the second controller served") }})
	if !errors.Is(err, datadir.ErrInUse) || !strings.Contains(err.Error(), "is in use by pid") {
		t.Fatalf("second Run on %s: %v, want datadir.ErrInUse naming the pid", dir, err)
	}
	if code, _ := first.get(t, "/healthz"); code != http.StatusOK {
		t.Fatalf("the first controller answers /healthz with %d after the second was refused", code)
	}

	if err := first.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Released on shutdown: the directory can be used again at once.
	if err := run(t, dir).stop(t); err != nil {
		t.Fatalf("Run after the first stopped: %v", err)
	}
}
