package benchproc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Start waits for each child in a goroutine; a leak means a child that
// Stop did not reap.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCleanupsStopChildren(t *testing.T) {
	var cl Cleanups
	var order []string
	cl.Add(func() { order = append(order, "first") })
	p, err := Start(&cl, "sleeper", "sh", "-c", "echo started; exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	cl.Add(func() { order = append(order, "last") })
	err = Poll(context.Background(), 10*time.Second, "output", func() error {
		if !strings.Contains(p.Output(), "started") {
			return errors.New("no output yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() {
		t.Fatal("child exited before Run")
	}
	cl.Run()
	if !p.Exited() {
		t.Error("child still running after Run")
	}
	if strings.Join(order, ",") != "last,first" {
		t.Errorf("steps ran in order %v, want last then first", order)
	}
	if p.Name() != "sleeper" {
		t.Errorf("Name() = %q", p.Name())
	}
}

func TestPollFatalEndsAtOnce(t *testing.T) {
	calls := 0
	cause := errors.New("child exited")
	// The deadline is far longer than the test timeout: only Fatal can end
	// this Poll.
	err := Poll(context.Background(), time.Hour, "x", func() error {
		calls++
		if calls == 3 {
			return Fatal(cause)
		}
		return errors.New("not yet")
	})
	if !errors.Is(err, cause) || calls != 3 {
		t.Fatalf("Poll = %v after %d calls, want %v after 3", err, calls, cause)
	}
}

func TestPollTimeoutSaysWhatWasWrong(t *testing.T) {
	err := Poll(context.Background(), 50*time.Millisecond, "x", func() error {
		return errors.New("still wrong")
	})
	if err == nil || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "still wrong") {
		t.Fatalf("Poll = %v, want a timeout naming the last error", err)
	}
}
