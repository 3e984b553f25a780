package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// gateSink is a push sink that holds every request until release: the
// subscription's pusher then takes one event and stops, and what it can
// buffer is exactly what its site absorbs. Only answered requests count as
// delivered, so that a retry after a client timeout is no duplicate.
type gateSink struct {
	url     string
	release chan struct{}
	opened  sync.Once
	mu      sync.Mutex
	ids     []string
}

func newGateSink(t *testing.T) *gateSink {
	s := &gateSink{release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.release:
		case <-r.Context().Done():
			return
		}
		s.mu.Lock()
		s.ids = append(s.ids, r.Header.Get("ce-id"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		s.open()
		srv.Close()
	})
	s.url = "http://" + ln.Addr().String() + "/"
	return s
}

// open answers the held requests and every later one.
func (s *gateSink) open() { s.opened.Do(func() { close(s.release) }) }

func (s *gateSink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

// metric sums the samples of a counter at s whose labels contain label
// ("" for all).
func (s *site) metric(name, label string) float64 {
	s.t.Helper()
	resp, err := http.Get(s.adminURL() + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		series, val, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(series, name) || !strings.Contains(series, label) {
			continue
		}
		if rest := series[len(name):]; rest != "" && rest[0] != '{' {
			continue
		}
		v, _ := strconv.ParseFloat(val, 64)
		sum += v
	}
	return sum
}

// TestEventsQueueSpill: on the line A-B-C, a volatile queue has a consumer
// at B, the nearest to the publisher A, and one at C. B's consumer is a push
// subscription whose sink holds every request, so B has room for a fixed
// number of events (one in flight, the rest buffered); what B cannot take it
// passes on to C instead of dropping. Each event reaches exactly one
// consumer, and none is dropped.
func TestEventsQueueSpill(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(b)
	b.linkTo(c)
	gate := newGateSink(t)
	b.weft("subscription", "create", "work-b", "--queue", "work", "--sink", gate.url)
	qc := c.subscribeSSE(t, "/v1/queues/work")
	// Each site's topic interest is announced in a record that also holds
	// its queue interest: once a topic probe reaches both, a knows both
	// queue consumers, and b knows c's.
	probe(t, a, "/v1/topics/probe", b.subscribeSSE(t, "/v1/topics/probe"), c.subscribeSSE(t, "/v1/topics/probe"))

	const total = 2000
	for i := 0; i < total; i += 100 {
		if code, body := a.publishBatch("/v1/queues/work", batch("job", "/a", i, 100)); code != 202 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	var atB int
	waitFor(t, 20*time.Second, "every job at b's pusher or c's subscriber", func() bool {
		atB = int(b.metric("weft_events_delivered_total", `kind="queue"`))
		return atB+qc.count("job") >= total
	})
	if atB == 0 || atB > 1025 || qc.count("job") == 0 {
		t.Errorf("b took %d jobs, c %d: want b to take what its consumer buffers (at most 1 + 1024) and c the rest", atB, qc.count("job"))
	}
	for _, s := range []*site{a, b, c} {
		if n := s.metric("weft_events_dropped_total", ""); n != 0 {
			t.Errorf("%s dropped %v events", s.name, n)
		}
	}
	gate.open()
	waitFor(t, 20*time.Second, fmt.Sprint(atB, " jobs at b's sink"), func() bool { return len(gate.got()) >= atB })
	wantExactlyOnce(t, "b and c together", append(gate.got(), qc.ids("job")...), total)
}

// wsCollector is a WebSocket subscriber that records every event it
// receives, with the inbox seq a site marks stored events with.
type wsCollector struct {
	collector
	seqs map[string]string // event id -> weftseq
}

func (c *wsCollector) seq(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seqs[id]
}

// subscribeWS subscribes at s over a WebSocket until the test ends or stop
// is called; query and header may carry a Last-Event-ID.
func (s *site) subscribeWS(t *testing.T, path, query string, header http.Header) (c *wsCollector, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	url := "ws" + strings.TrimPrefix(s.eventsURL(), "http") + path + "/events" + query
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		cancel()
		t.Fatalf("subscribe %s at %s: %v", url, s.name, err)
	}
	c = &wsCollector{seqs: map[string]string{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			typ, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var e struct {
				ce
				Weftseq string
			}
			if typ != websocket.MessageText || json.Unmarshal(data, &e) != nil {
				t.Errorf("bad message %v %q", typ, data)
				continue
			}
			c.mu.Lock()
			c.evs = append(c.evs, e.ce)
			if e.Weftseq != "" {
				c.seqs[e.ID] = e.Weftseq
			}
			c.mu.Unlock()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			conn.Close(websocket.StatusNormalClosure, "")
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// TestEventsWebSocket: GET .../events with a WebSocket upgrade streams each
// event as a structured CloudEvent text message; on a persisted topic a
// client reconnecting with the weftseq of the last event it got, as the
// lastEventId query parameter or the Last-Event-ID header, gets what
// follows it and nothing before.
func TestEventsWebSocket(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	a.linkTo(b)
	a.weft("topic", "create", "ledger", "--delivery", "persisted")

	t.Run("volatile", func(t *testing.T) {
		ws, _ := b.subscribeWS(t, "/v1/topics/orders", "", nil)
		queue, _ := b.subscribeWS(t, "/v1/queues/jobs", "", nil)
		// Each interest may reach a in a record of its own.
		probe(t, a, "/v1/topics/orders", &ws.collector)
		probeQueue(t, a, "/v1/queues/jobs")
		if code, body := a.publishBatch("/v1/topics/orders", batch("order", "/a", 0, 100)); code != 202 {
			t.Fatalf("publish: %d %s", code, body)
		}
		if code, body := a.publishBatch("/v1/queues/jobs", batch("job", "/a", 0, 100)); code != 202 {
			t.Fatalf("publish to the queue: %d %s", code, body)
		}
		waitFor(t, 10*time.Second, "100 orders and 100 jobs", func() bool { return ws.count("order") >= 100 && queue.count("job") >= 100 })
		wantExactlyOnce(t, "the topic subscriber", ws.ids("order"), 100)
		wantExactlyOnce(t, "the queue consumer", queue.ids("job"), 100)
	})

	t.Run("resume", func(t *testing.T) {
		first, stop := b.subscribeWS(t, "/v1/topics/ledger", "", nil)
		probe(t, a, "/v1/topics/ledger", &first.collector)
		if code, body := a.publishBatch("/v1/topics/ledger", batch("p", "/a", 0, 50)); code != 202 {
			t.Fatalf("publish: %d %s", code, body)
		}
		waitFor(t, 10*time.Second, "50 persisted events", func() bool { return first.count("p") >= 50 })
		at19, at44 := first.seq("19"), first.seq("44")
		if at19 == "" || at44 == "" {
			t.Fatalf("stored events carry no weftseq: %q %q", at19, at44)
		}
		stop()
		byQuery, _ := b.subscribeWS(t, "/v1/topics/ledger", "?lastEventId="+at19, nil)
		byHeader, _ := b.subscribeWS(t, "/v1/topics/ledger", "", http.Header{"Last-Event-ID": {at44}})
		if code, body := a.publishBatch("/v1/topics/ledger", batch("p", "/a", 50, 10)); code != 202 {
			t.Fatalf("publish: %d %s", code, body)
		}
		waitFor(t, 10*time.Second, "the backlog and the new events", func() bool { return byQuery.count("p") >= 40 && byHeader.count("p") >= 15 })
		for _, c := range []struct {
			who  string
			got  []string
			from int
		}{{"resumed by query", byQuery.ids("p"), 20}, {"resumed by header", byHeader.ids("p"), 45}} {
			wantExactlyOnce(t, c.who, c.got, 60-c.from)
			for i, id := range c.got {
				if id != fmt.Sprint(c.from+i) {
					t.Fatalf("%s got %v, want %d..59 in order", c.who, c.got, c.from)
				}
			}
		}
	})
}
