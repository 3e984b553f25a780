package broker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/pubclient"
	"weft.dev/weft/internal/events/store"
)

// BenchmarkVolatileTopic measures the volatile path of bench/events in one
// process, for profiling: a publish request at a with a batch of 100 events
// of 256 bytes of data, the in-memory link to b, and an SSE stream at b
// writing to nowhere. One op is one event.
//
//	go test ./internal/events/broker -run - -bench VolatileTopic -cpuprofile cpu.out
func BenchmarkVolatileTopic(bm *testing.B) {
	m := newMesh(bm, []string{"a", "b"}, [][3]int{{1, 2, 1}})
	a, b := m.site("a"), m.site("b")
	got := b.sseToNowhere(bm, "bench.v")

	const batch = 100
	var body strings.Builder
	body.WriteByte('[')
	for i := range batch {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"specversion":"1.0","id":"%d","source":"/bench","type":"bench","datacontenttype":"text/plain","data":"%s"}`, i, strings.Repeat("x", 256))
	}
	body.WriteByte(']')
	h := a.b.Handler()
	bm.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < bm.N {
		req := httptest.NewRequest("POST", "/v1/topics/bench.v", strings.NewReader(body.String()))
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			bm.Fatalf("publish: %d %s", rec.Code, rec.Body)
		}
		sent += batch
	}
	lost := func() int64 { return int64(dropped(a, "link-queue-full") + dropped(b, "slow-consumer")) }
	waitFor(bm, "every event at the stream or counted as dropped", func() bool { return got.Load()+lost() >= int64(sent) })
	bm.StopTimer()
	bm.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "events/s")
	bm.ReportMetric(float64(lost()), "dropped")
}

// BenchmarkPersistedQueue measures a persisted queue end to end in one
// process: batches of 100 events published at a, stored there, sent over the
// in-memory link to b, stored in b's queued bucket and handed to a live
// consumer at b. One op is one event.
//
//	go test ./internal/events/broker -run - -bench PersistedQueue -benchtime 20000x
func BenchmarkPersistedQueue(bm *testing.B) {
	m := newMesh(bm, []string{"a", "b"}, [][3]int{{1, 2, 1}})
	a := m.site("a")
	a.persisted(bm, events.Queue, "jobs")
	got := m.site("b").drain(bm, events.Queue, "jobs")
	m.tablesChanged()
	const batch = 100
	n := (bm.N + batch - 1) / batch * batch
	bm.ResetTimer()
	start := time.Now()
	a.publishBatches(bm, events.Queue, "jobs", n, batch)
	waitFor(bm, "every event at b's consumer", func() bool { return got.count() >= n })
	bm.StopTimer()
	bm.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
}

// sseToNowhere runs an SSE stream of topic subscription pattern at s that
// only counts its events, until the benchmark ends.
func (s *meshSite) sseToNowhere(bm *testing.B, pattern string) *atomic.Int64 {
	sub := s.subscribe(bm, events.Topic, pattern)
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.b.stream(ctx, sub, 0, false, &sseOut{w: bufio.NewWriterSize(eventCounter{&got}, 32<<10), fl: nopFlusher{}})
	}()
	bm.Cleanup(func() {
		cancel()
		<-done
		s.b.unsubscribe(sub)
	})
	return &got
}

// eventCounter counts the SSE events written through it: each ends with an
// empty line.
type eventCounter struct{ n *atomic.Int64 }

func (c eventCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, []byte("\n\n"))))
	return len(p), nil
}

type nopFlusher struct{}

func (nopFlusher) Flush() {}

// BenchmarkPersistedLatency traces one persisted event at a time from a
// publisher at a to a live subscriber at b, in each store sync mode: ack is
// Publish's return (stored at a, all a publisher waits for), recv the
// event's arrival at b (read from a's log, sent, stored at b, delivered);
// their p50 and p99. One op is one event.
//
//	go test ./internal/events/broker -run - -bench PersistedLatency -benchtime 2000x
func BenchmarkPersistedLatency(bm *testing.B) {
	for _, mode := range []store.Sync{store.SyncAlways, store.SyncInterval} {
		bm.Run(string(mode), func(bm *testing.B) { benchmarkPersistedLatency(bm, mode, 0, pubDirect) })
	}
	// The stores as bench/events's latency test finds them, after its
	// throughput test: every commit walks and writes trees of several
	// levels, where a fresh store has one page per bucket.
	bm.Run("interval-after-burst", func(bm *testing.B) { benchmarkPersistedLatency(bm, store.SyncInterval, 300, pubDirect) })
	// As bench/events publishes its probes: one binary-mode POST per event
	// over loopback TCP, or one batch on a publish stream.
	bm.Run("interval-post", func(bm *testing.B) { benchmarkPersistedLatency(bm, store.SyncInterval, 0, pubPOST) })
	bm.Run("interval-stream", func(bm *testing.B) { benchmarkPersistedLatency(bm, store.SyncInterval, 0, pubStream) })
}

// How benchmarkPersistedLatency publishes its events.
const (
	pubDirect = iota // Broker.Publish
	pubPOST          // POST /v1/topics/lat, binary mode, with net/http's client
	pubStream        // a publish stream
)

// benchmarkPersistedLatency first publishes bursts batches of 100 events of
// 256 bytes of data, when not 0.
func benchmarkPersistedLatency(bm *testing.B, mode store.Sync, bursts int, how int) {
	m := newMesh(bm, []string{"a", "b"}, [][3]int{{1, 2, 1}}, func(cfg *Config) {
		st, err := store.Open(filepath.Join(bm.TempDir(), "e.db"), store.Options{Sync: mode})
		if err != nil {
			bm.Fatal(err)
		}
		bm.Cleanup(func() { st.Close() }) // after the mesh's, which stops the brokers
		cfg.Store = st
	})
	a := m.site("a")
	a.persisted(bm, events.Topic, "lat")
	got := make(chan delivery, 1)
	m.site("b").consume(bm, events.Topic, "lat", func(d delivery) {
		if !bytes.Contains(d.JSON, []byte(`"burst-`)) {
			got <- d
		}
	})
	m.tablesChanged()
	// Probes until one arrives: b's interest has reached a, and what was
	// published before has arrived.
	n := 0
	probe := func(what string) {
		waitFor(bm, what, func() bool {
			n++
			if err := a.b.Publish(bm.Context(), events.Topic, "lat", []cloudevent.Decoded{event(bm, fmt.Sprint("probe-", n))}); err != nil {
				bm.Fatal(err)
			}
			select {
			case <-got:
				return true
			case <-time.After(100 * time.Millisecond):
				return false
			}
		})
		for len(got) > 0 { // a late probe
			<-got
		}
	}
	probe("b's interest at a")
	if bursts > 0 {
		data := bytes.Repeat([]byte("x"), 256)
		for i := range bursts {
			evs := make([]cloudevent.Decoded, 100)
			for k := range evs {
				evs[k] = eventData(bm, fmt.Sprint("burst-", i, "-", k), data)
			}
			if err := a.b.Publish(bm.Context(), events.Topic, "lat", evs); err != nil {
				bm.Fatal(err)
			}
		}
		probe("the burst at b")
	}
	publish := func(id string) {
		if err := a.b.Publish(bm.Context(), events.Topic, "lat", []cloudevent.Decoded{event(bm, id)}); err != nil {
			bm.Fatal(err)
		}
	}
	if how != pubDirect {
		srv := httptest.NewServer(a.b.Handler())
		bm.Cleanup(srv.Close)
		publish = latencyPublisher(bm, srv.URL+"/v1/topics/lat", how)
	}
	var ack, recv []time.Duration
	for i := 0; bm.Loop(); i++ {
		start := time.Now()
		publish(fmt.Sprint(i))
		ack = append(ack, time.Since(start))
		<-got
		recv = append(recv, time.Since(start))
	}
	for name, ds := range map[string][]time.Duration{"ack": ack, "recv": recv} {
		slices.Sort(ds)
		bm.ReportMetric(float64(ds[len(ds)/2].Microseconds()), name+"-p50-µs")
		bm.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), name+"-p99-µs")
	}
}

// latencyPublisher publishes one event to url, as bench/events does, and
// returns once the site has answered.
func latencyPublisher(bm *testing.B, url string, how int) func(id string) {
	data := strings.Repeat("x", 256)
	if how == pubStream {
		p, err := pubclient.Dial(bm.Context(), "ws"+strings.TrimPrefix(url, "http")+"/publish", pubclient.Options{})
		if err != nil {
			bm.Fatal(err)
		}
		bm.Cleanup(func() { p.Close() })
		return func(id string) {
			ev := fmt.Appendf(nil, `{"specversion":"1.0","id":"%s","source":"/bench","type":"bench","datacontenttype":"text/plain","data":"%s"}`, id, data)
			if _, err := p.Publish(bm.Context(), [][]byte{ev}); err != nil {
				bm.Fatal(err)
			}
			if err := p.Flush(bm.Context()); err != nil {
				bm.Fatal(err)
			}
		}
	}
	cl := &http.Client{Transport: &http.Transport{}}
	bm.Cleanup(cl.CloseIdleConnections)
	return func(id string) {
		req, err := http.NewRequestWithContext(bm.Context(), "POST", url, strings.NewReader(data))
		if err != nil {
			bm.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("ce-specversion", "1.0")
		req.Header.Set("ce-id", id)
		req.Header.Set("ce-source", "/bench")
		req.Header.Set("ce-type", "bench")
		resp, err := cl.Do(req)
		if err != nil {
			bm.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			bm.Fatalf("publish: %s", resp.Status)
		}
	}
}
