package push

import (
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for status, want := range map[int]Outcome{
		200: Delivered, 202: Delivered, 204: Delivered,
		400: Failed, 401: Failed, 403: Failed, 413: Failed,
		404: Retry, 409: Retry, 429: Retry, 500: Retry, 503: Retry, 0: Retry, 302: Retry,
	} {
		if got := Classify(status); got != want {
			t.Errorf("Classify(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	exp := Policy{Retry: 3, Exponential: true, Delay: 100 * time.Millisecond}
	lin := Policy{Retry: 3, Delay: 100 * time.Millisecond}
	for n, want := range []time.Duration{100, 200, 400, 800} {
		if got := exp.Backoff(n); got != want*time.Millisecond {
			t.Errorf("exponential %d: %v", n, got)
		}
	}
	for n, want := range []time.Duration{100, 200, 300, 400} {
		if got := lin.Backoff(n); got != want*time.Millisecond {
			t.Errorf("linear %d: %v", n, got)
		}
	}
	if got := exp.Backoff(100); got != time.Minute {
		t.Errorf("capped: %v", got)
	}
}
