package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/pubclient"
)

// answers records a publisher's answers, in the order they came.
type answers struct {
	mu   sync.Mutex
	seqs []uint64
	errs map[uint64]error
}

func (a *answers) record(seq uint64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seqs = append(a.seqs, seq)
	if err != nil {
		if a.errs == nil {
			a.errs = map[uint64]error{}
		}
		a.errs[seq] = err
	}
}

// serveAPI serves s's event API on loopback until the test ends and
// returns its ws:// base.
func serveAPI(t *testing.T, s *meshSite) string {
	srv := httptest.NewServer(s.b.Handler())
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func jsonEvent(id string) []byte {
	return []byte(`{"specversion":"1.0","id":"` + id + `","source":"/test","type":"t","data":{"n":1}}`)
}

// streamBatches publishes events 0..n-1 in batches of batch over p.
func streamBatches(t *testing.T, p *pubclient.Publisher, n, batch int) {
	t.Helper()
	for i := 0; i < n; i += batch {
		evs := make([][]byte, batch)
		for j := range evs {
			evs[j] = jsonEvent(fmt.Sprint(i + j))
		}
		if _, err := p.Publish(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestPublishStream: events published over a publish stream at a reach a
// subscriber at b once each, volatile and persisted, and every batch is
// acknowledged in order.
func TestPublishStream(t *testing.T) {
	for _, persisted := range []bool{false, true} {
		t.Run(fmt.Sprint("persisted=", persisted), func(t *testing.T) {
			m := newMesh(t, []string{"a", "b"}, [][3]int{{1, 2, 1}})
			a, b := m.site("a"), m.site("b")
			if persisted {
				a.persisted(t, events.Topic, "orders")
			}
			d := b.drain(t, events.Topic, "orders")
			var got answers
			p, err := pubclient.Dial(context.Background(), serveAPI(t, a)+"/v1/events/orders/publish", pubclient.Options{OnAnswer: got.record})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Kind() != "topic" {
				t.Errorf("kind %q, want topic", p.Kind())
			}
			const n, batch = 1000, 25
			streamBatches(t, p, n, batch)
			got.mu.Lock()
			if len(got.seqs) != n/batch || got.errs != nil {
				t.Errorf("answers %v, errors %v; want %d acknowledgements", got.seqs, got.errs, n/batch)
			}
			for i, s := range got.seqs {
				if s != uint64(i+1) {
					t.Fatalf("answer %d is for batch %d", i, s)
				}
			}
			got.mu.Unlock()
			waitFor(t, "every event at b", func() bool { return d.count() >= n })
			wantOnce(t, "b", d.got(), n)
		})
	}
}

// TestPublishStreamRefusals: a batch with an event that is not a CloudEvent
// is refused whole, with the HTTP API's code, and the batches around it go
// on; a message that breaks the protocol ends the stream.
func TestPublishStreamRefusals(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil)
	a := m.site("a")
	d := a.drain(t, events.Topic, "orders")
	base := serveAPI(t, a)
	var got answers
	p, err := pubclient.Dial(context.Background(), base+"/v1/topics/orders/publish", pubclient.Options{OnAnswer: got.record})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, evs := range [][][]byte{{jsonEvent("1")}, {jsonEvent("2"), []byte(`{"id":"x"}`)}, {jsonEvent("3")}} {
		if _, err := p.Publish(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var re *pubclient.RefusedError
	got.mu.Lock()
	if len(got.seqs) != 3 || len(got.errs) != 1 || !errors.As(got.errs[2], &re) || re.Code != "MalformedEvent" {
		t.Errorf("answers %v, errors %v; want batch 2 alone refused as MalformedEvent", got.seqs, got.errs)
	}
	got.mu.Unlock()
	waitFor(t, "events 1 and 3", func() bool { return d.count() >= 2 })
	if ids := d.got(); len(ids) != 2 || ids[0] != "1" || ids[1] != "3" {
		t.Errorf("subscriber got %v, want [1 3]", ids)
	}

	// Raw messages: a batch numbered out of turn, and a text message.
	for name, msg := range map[string][]byte{
		"out of turn": events.AppendPubBatch(nil, 2, [][]byte{jsonEvent("4")}),
		"not a batch": {events.PubBatch, 1, 0},
	} {
		c, _, err := websocket.Dial(context.Background(), base+"/v1/topics/orders/publish", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(context.Background()); err != nil { // the hello
			t.Fatal(err)
		}
		if err := c.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(context.Background()); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Errorf("%s: read %v, want the stream closed as a policy violation", name, err)
		}
		c.CloseNow()
	}

	// Not a WebSocket: the API's error, saying what to do.
	resp, err := http.Get("http" + strings.TrimPrefix(base, "ws") + "/v1/topics/orders/publish")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET: %d, want 400", resp.StatusCode)
	}
}

// TestPublishStreamAuthorize: a publish stream is let in exactly as a
// publish request: 401 without a known credential, 403 outside its
// patterns, counted alike; and it ends when its credential does.
func TestPublishStreamAuthorize(t *testing.T) {
	g := &grants{perms: map[string]map[Access][]string{
		"pub": {Publish: {"orders.>"}},
		"sub": {Subscribe: {"orders.>"}},
	}}
	revoked := make(chan struct{})
	m := newMesh(t, []string{"a"}, nil, func(c *Config) {
		c.Authorize = g.authorize
		c.CredentialDone = func(string) <-chan struct{} { return revoked }
	})
	a := m.site("a")
	base := serveAPI(t, a)
	for _, tc := range []struct {
		name, path, auth string
		status           int
		code             string
	}{
		{"no credential", "/v1/topics/orders.created/publish", "", 401, "Unauthorized"},
		{"unknown credential", "/v1/events/orders.created/publish", "Bearer nope", 401, "Unauthorized"},
		{"outside the patterns", "/v1/topics/payments.made/publish", "Bearer pub", 403, "Forbidden"},
		{"subscribe-only credential", "/v1/events/orders.created/publish", "Bearer sub", 403, "Forbidden"},
	} {
		_, err := pubclient.Dial(context.Background(), base+tc.path, pubclient.Options{Authorization: tc.auth})
		var ae *pubclient.APIError
		if !errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.code {
			t.Errorf("%s: %v, want %d %s", tc.name, err, tc.status, tc.code)
		}
	}
	for _, c := range []struct {
		reason string
		n      float64
	}{{"unauthenticated", 2}, {"forbidden", 2}} {
		if got := testutil.ToFloat64(a.b.m.authRefused.WithLabelValues("publish", c.reason)); got != c.n {
			t.Errorf("weft_events_auth_refused_total{access=publish,reason=%q} = %v, want %v", c.reason, got, c.n)
		}
	}

	d := a.drain(t, events.Topic, "orders.created")
	p, err := pubclient.Dial(context.Background(), base+"/v1/events/orders.created/publish", pubclient.Options{Authorization: "Bearer pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	streamBatches(t, p, 10, 5)
	waitFor(t, "the events", func() bool { return d.count() >= 10 })
	close(revoked)
	err = p.Flush(context.Background())
	for err == nil {
		_, err = p.Publish(context.Background(), [][]byte{jsonEvent("x")})
		if err == nil {
			err = p.Flush(context.Background())
		}
	}
}

// TestPublishStreamWaitsForRoom: a publish stream whose events would go to
// a neighbour whose queue is over peerRoomBytes waits for it to drain
// instead of having them dropped at the queue's limit.
func TestPublishStreamWaitsForRoom(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil)
	a := m.site("a")
	full := &peerOut{ch: make(chan chunk, 1)}
	full.queued.Store(peerRoomBytes + 1)
	a.b.mu.Lock()
	a.b.peers[sid(9)] = full
	a.b.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- a.b.waitPeerRoom(context.Background()) }()
	// The waiter is waiting once it made the channel it waits on.
	waitFor(t, "the waiter", func() bool {
		full.drainMu.Lock()
		defer full.drainMu.Unlock()
		return full.drained != nil
	})
	select {
	case err := <-done:
		t.Fatalf("waitPeerRoom returned %v with the queue full", err)
	default:
	}
	full.queued.Store(0)
	full.wakeWaiters()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.b.mu.Lock()
	delete(a.b.peers, sid(9))
	a.b.mu.Unlock()
}

// BenchmarkPublishStream measures publish streams in one process, for
// profiling both sites at once: 4 streams at a publishing batches of 100
// events of 256 bytes of data (as `weft bench pub --pubs 4`), the in-memory
// link to b, and a subscriber at b, volatile and persisted (fsync at both).
// One op is one event.
//
//	go test ./internal/events/broker -run - -bench PublishStream -cpuprofile cpu.out -memprofile mem.out
func BenchmarkPublishStream(bm *testing.B) {
	for _, persisted := range []bool{false, true} {
		bm.Run(map[bool]string{false: "volatile", true: "persisted"}[persisted], func(bm *testing.B) {
			m := newMesh(bm, []string{"a", "b"}, [][3]int{{1, 2, 1}})
			a, b := m.site("a"), m.site("b")
			if persisted {
				a.persisted(bm, events.Topic, "bench")
			}
			got := b.sseToNowhere(bm, "bench")
			srv := httptest.NewServer(a.b.Handler())
			defer srv.Close()
			url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/topics/bench/publish"
			const pubs, batch = 4, 100
			evs := make([][]byte, batch)
			var ids atomic.Int64
			bm.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range pubs {
				p, err := pubclient.Dial(context.Background(), url, pubclient.Options{})
				if err != nil {
					bm.Fatal(err)
				}
				defer p.Close()
				evs := slices.Clone(evs)
				wg.Go(func() {
					for n := 0; n < bm.N/pubs; n += batch {
						for i := range evs {
							evs[i] = fmt.Appendf(evs[i][:0], `{"specversion":"1.0","id":"%d","source":"/bench","type":"bench","datacontenttype":"text/plain","data":"%s"}`, ids.Add(1), strings.Repeat("x", 256))
						}
						if _, err := p.Publish(context.Background(), evs); err != nil {
							bm.Error(err)
							return
						}
					}
					if err := p.Flush(context.Background()); err != nil {
						bm.Error(err)
					}
				})
			}
			wg.Wait()
			sent := ids.Load()
			lost := func() int64 { return int64(dropped(b, "slow-consumer")) }
			waitFor(bm, "every event at b or counted as dropped", func() bool { return got.Load()+lost() >= sent })
			bm.StopTimer()
			bm.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "events/s")
			bm.ReportMetric(float64(lost()), "dropped")
		})
	}
}
