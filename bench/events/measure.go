package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// payloadSize is the size of every event's data: a decimal send time
// (UnixNano, 19 digits) padded with 'x'.
const payloadSize = 256

func payload(now time.Time) []byte {
	b := make([]byte, payloadSize)
	n := copy(b, strconv.FormatInt(now.UnixNano(), 10))
	for i := n; i < len(b); i++ {
		b[i] = 'x'
	}
	return b
}

// sentAt reads the send time back from the start of a payload.
func sentAt(p []byte) (int64, bool) {
	if len(p) < 19 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(p[:19]), 10, 64)
	return v, err == nil
}

// sink is a subscriber's side of a measurement: both systems' receive
// loops call got for every event.
type sink struct {
	count atomic.Int64
	last  atomic.Int64 // UnixNano of the last receipt
	// lat takes publish-to-receipt times, only while a latency test
	// waits: taken at the receipt, since an event can arrive before its
	// publisher has the acknowledgement.
	lat   chan time.Duration
	wantL atomic.Bool
}

func newSink() *sink { return &sink{lat: make(chan time.Duration, 1)} }

func (s *sink) got(p []byte) {
	now := time.Now().UnixNano()
	s.count.Add(1)
	s.last.Store(now)
	if s.wantL.Load() {
		if t, ok := sentAt(p); ok {
			select {
			case s.lat <- time.Duration(now - t):
			default:
			}
		}
	}
}

// publisher sends n events of payloadSize bytes and returns once the
// system has accepted them (202, Flush, or every PubAck).
type publisher func(ctx context.Context, n int) error

// result of one system on one delivery mode.
type result struct {
	Throughput float64 // delivered events per second
	Sent, Lost int64
	P50, P99   time.Duration
	LatLost    int
}

// throughput runs workers publishers, each sending batches of batch events
// until d has passed, and counts what the sink received from the first
// publish to the last receipt (waiting for stragglers up to 10 s).
func throughput(ctx context.Context, s *sink, pubs []publisher, batch int, d time.Duration) (result, error) {
	s.count.Store(0)
	var sent atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, len(pubs))
	for _, p := range pubs {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := p(ctx, batch); err != nil {
					errs <- err
					return
				}
				sent.Add(int64(batch))
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(slices.Collect(chanSeq(errs))...); err != nil {
		return result{}, err
	}
	// Wait until everything arrived, or until nothing has for 2 s (a
	// volatile path may drop).
	prev, still := int64(-1), time.Now()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		c := s.count.Load()
		if c >= sent.Load() {
			break
		}
		if c != prev {
			prev, still = c, time.Now()
		} else if time.Since(still) > 2*time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return result{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	got := s.count.Load()
	el := time.Duration(s.last.Load() - start.UnixNano())
	if got == 0 || el <= 0 {
		return result{}, fmt.Errorf("no event arrived (%d sent)", sent.Load())
	}
	return result{Throughput: float64(got) / el.Seconds(), Sent: sent.Load(), Lost: sent.Load() - got}, nil
}

// maxLatencyLost ends a latency test that sees no probe arrive: 30 lost
// probes wait 2 s each.
const maxLatencyLost = 30

func chanSeq(c chan error) func(func(error) bool) {
	return func(yield func(error) bool) {
		for e := range c {
			if !yield(e) {
				return
			}
		}
	}
}

// latency publishes one event at a time and waits for it at the sink
// before the next (one in flight), for d: publish-to-receipt times. It
// goes on past d until one event has arrived: a subscriber still draining
// what a throughput run without back-pressure queued (core NATS async)
// takes the first probes seconds to see.
func latency(ctx context.Context, s *sink, p publisher, d time.Duration) (result, error) {
	s.wantL.Store(true)
	defer s.wantL.Store(false)
	var lats []time.Duration
	lost := 0
	for end := time.Now().Add(d); (time.Now().Before(end) || len(lats) == 0) && lost < maxLatencyLost; {
		// Drop a late arrival of an earlier event that timed out.
		select {
		case <-s.lat:
		default:
		}
		if err := p(ctx, 1); err != nil {
			return result{}, err
		}
		select {
		case l := <-s.lat:
			lats = append(lats, l)
		case <-time.After(2 * time.Second):
			lost++
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
	}
	if len(lats) == 0 {
		return result{}, fmt.Errorf("no event arrived in the latency test (%d probes lost)", lost)
	}
	slices.Sort(lats)
	q := func(f float64) time.Duration { return lats[int(f*float64(len(lats)-1))] }
	return result{P50: q(0.50), P99: q(0.99), LatLost: lost, Sent: int64(len(lats))}, nil
}
