package reconcile

import (
	"math/rand/v2"
	"sync"
	"time"
)

// backoff is the queue's per-item rate limiter: exponential from min, capped
// at max, with "equal jitter" (a uniform pick in [d/2, d]) so that targets
// that failed together, say behind one network partition, do not all retry
// in the same instant. It implements workqueue.TypedRateLimiter.
type backoff struct {
	min, max time.Duration
	int64N   func(n int64) int64 // rand.Int64N; replaced in tests

	mu       sync.Mutex // guards failures
	failures map[item]int
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, int64N: rand.Int64N, failures: map[item]int{}}
}

// delay is the un-jittered wait before retry number n+1 (n failures so far).
func delay(min, max time.Duration, n int) time.Duration {
	d := min
	for range n {
		if d >= max/2 { // doubling again would pass max (or overflow)
			return max
		}
		d *= 2
	}
	return d
}

func (b *backoff) When(it item) time.Duration {
	b.mu.Lock()
	n := b.failures[it]
	b.failures[it] = n + 1
	b.mu.Unlock()
	d := delay(b.min, b.max, n)
	half := d / 2
	return d - half + time.Duration(b.int64N(int64(half)+1))
}

func (b *backoff) Forget(it item) {
	b.mu.Lock()
	delete(b.failures, it)
	b.mu.Unlock()
}

func (b *backoff) NumRequeues(it item) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures[it]
}
