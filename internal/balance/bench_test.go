package balance

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPick measures one Pick in a single tier of measured, partly
// loaded candidates, the common case; an idle second tier adds the scan
// cost of remote candidates.
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{2, 10, 100} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cands := make([]Candidate, 0, n)
			for i := range n {
				cost := uint64(1)
				if i >= n/2 && n > 2 {
					cost = 5
				}
				cands = append(cands, Candidate{Key: Key(fmt.Sprintf("site-%03d", i)), Cost: cost, Capacity: uint32(1 + i%3)})
			}
			p := newPicker(Config{}, 1)
			p.Snapshot(t0, cands)
			for i, c := range cands {
				for range i % 4 {
					p.Start(c.Key, Request)
				}
				p.Start(c.Key, Request)
				p.Done(t0, c.Key, Request, time.Duration(1+i%7)*time.Millisecond, Success)
			}
			now := t0.Add(time.Second)
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := p.Pick(now, cands, nil); !ok {
					b.Fatal("no candidate")
				}
			}
		})
	}
}
