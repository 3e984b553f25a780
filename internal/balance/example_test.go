package balance_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"weft.dev/weft/internal/balance"
)

// A TCP listener's use of a Picker: one lock around choose-and-count, the
// connect time as the latency sample, failover to the next candidate.
func Example() {
	var mu sync.Mutex // guards p
	p := balance.NewPicker(balance.Config{}, rand.New(rand.NewPCG(1, 2)))
	cands := []balance.Candidate{
		{Key: "site-local", Cost: 1, Limits: balance.Limits{MaxConnections: 1}},
		{Key: "site-remote", Cost: 10},
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	connect := func(tried map[balance.Key]bool) balance.Key {
		mu.Lock()
		defer mu.Unlock()
		k, ok := p.Pick(now, cands, func(k balance.Key) bool { return tried[k] })
		if !ok {
			return "" // refuse the client: everything is full
		}
		p.Start(k, balance.Connection)
		return k
	}

	first := connect(nil)
	mu.Lock()
	p.Observe(now, first, 3*time.Millisecond, balance.Success) // connected
	mu.Unlock()

	// The local site is now at its limit: the next client spills over.
	second := connect(nil)
	fmt.Println(first, second)

	// The first connection closes: release it without a sample.
	mu.Lock()
	p.Done(now, first, balance.Connection, 0, balance.Cancelled)
	mu.Unlock()
	fmt.Println(connect(nil))
	// Output:
	// site-local site-remote
	// site-local
}
