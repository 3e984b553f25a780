package controller_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"weft.dev/weft/internal/controller"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMetrics checks that one listener serves both /metrics, with the engine's
// series and leadership, and the API.
func TestMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- controller.Run(ctx, controller.Options{Data: t.TempDir(), Listen: "127.0.0.1:0", Ready: func(a string) { addr <- a }})
	}()
	base := "http://" + <-addr

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// SQLite leads at once, but the engine starts in its own goroutine.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get("/metrics")
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
	if code, _ := get("/v2/projects"); code != http.StatusUnauthorized {
		t.Errorf("GET /v2/projects without a token: %d, want 401 from the API behind the same listener", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
