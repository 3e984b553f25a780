package controller

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"weft.dev/weft/internal/controller/reconcile"
)

// sourceFunc adapts a function to reconcile.Source.
type sourceFunc func(context.Context) ([]reconcile.Desired, error)

func (f sourceFunc) Desired(ctx context.Context) ([]reconcile.Desired, error) { return f(ctx) }

type nopSink struct{}

func (nopSink) RecordStatus(context.Context, reconcile.Status) error { return nil }

// TestTermNoticesWriteDuringFirstPass: another replica writes while a new
// leader's engine makes its first pass, after that pass has read the store.
// The write is in no pass yet, so the generation poll must report it. It does
// only if the poll's baseline was read before the pass; the fake generation
// makes a baseline read after the engine started (the old order) wait until
// the write is done, so that the test fails for it every time.
func TestTermNoticesWriteDuringFirstPass(t *testing.T) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	pollClock := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	const poll = 2 * time.Second

	var (
		mu         sync.Mutex // guards gen, engineMade, nPasses
		gen        int64
		engineMade bool
		nPasses    int
	)
	firstPassDone := make(chan struct{})
	passes := make(chan int, 10)
	src := sourceFunc(func(context.Context) ([]reconcile.Desired, error) {
		mu.Lock()
		nPasses++
		n := nPasses
		if n == 1 {
			gen++ // the other replica's write, just after this pass read the store
			close(firstPassDone)
		}
		mu.Unlock()
		passes <- n
		return nil, nil
	})
	generation := func(ctx context.Context) (int64, error) {
		mu.Lock()
		made := engineMade
		mu.Unlock()
		if made {
			select {
			case <-firstPassDone:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return gen, nil
	}
	newEngine := func() *reconcile.Engine {
		mu.Lock()
		engineMade = true
		mu.Unlock()
		// The engine's own clock is never stepped: no resync stands in for the poll.
		return reconcile.New(src, nopSink{}, reconcile.Options{Clock: clocktesting.NewFakeClock(time.Unix(1_000_000, 0)), Logger: discard})
	}
	var swapped []*reconcile.Engine
	swap := func(e *reconcile.Engine) { swapped = append(swapped, e) }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- term(ctx, generation, newEngine, swap, Options{Clock: pollClock, LeaderPoll: poll, Logger: discard})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("term: %v", err)
		}
		if len(swapped) != 2 || swapped[0] == nil || swapped[1] != nil {
			t.Errorf("swap saw %v, want the term's engine, then nil", swapped)
		}
	}()

	next := func(what string) int {
		t.Helper()
		select {
		case n := <-passes:
			return n
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
			return 0
		}
	}
	next("first pass")
	// The poll's ticker exists once the baseline has been read.
	for deadline := time.Now().Add(10 * time.Second); !pollClock.HasWaiters(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the generation poll never started")
		}
	}
	pollClock.Step(poll)
	if n := next("pass after the poll: the write during the first pass was lost"); n != 2 {
		t.Fatalf("pass %d, want 2", n)
	}
}
