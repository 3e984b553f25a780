package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func (s *site) eventsURL() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "events.addr"))
	if err != nil {
		s.t.Fatal(err)
	}
	return "http://" + string(b)
}

type ce struct {
	ID, Source, Type string
	Data             json.RawMessage
	Traceparent      string // the CloudEvents distributed-tracing attribute
}

// publishBatch posts events as one structured batch and returns the status.
func (s *site) publishBatch(path string, evs []ce) (int, string) {
	var arr []map[string]any
	for _, e := range evs {
		arr = append(arr, map[string]any{"specversion": "1.0", "id": e.ID, "source": e.Source, "type": e.Type, "datacontenttype": "application/json", "data": e.Data})
	}
	body, _ := json.Marshal(arr)
	resp, err := http.Post(s.eventsURL()+path, "application/cloudevents-batch+json", bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// collector is an SSE subscriber that records every event it receives.
type collector struct {
	mu  sync.Mutex
	evs []ce
}

func (c *collector) ids(typ string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.evs {
		if e.Type == typ {
			out = append(out, e.ID)
		}
	}
	return out
}

func (c *collector) count(typ string) int { return len(c.ids(typ)) }

// subscribeSSE subscribes at s until the test ends.
func (s *site) subscribeSSE(t *testing.T, path string) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.eventsURL()+path+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		cancel()
		t.Fatalf("subscribe %s at %s: %v %v", path, s.name, err, resp)
	}
	c := &collector{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var e ce
				json.Unmarshal([]byte(d), &e)
				c.mu.Lock()
				c.evs = append(c.evs, e)
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return c
}

// probe publishes probe events at pub until every collector got one: interest
// has then reached the publisher.
func probe(t *testing.T, pub *site, path string, cs ...*collector) {
	t.Helper()
	n := 0
	waitFor(t, 15*time.Second, "interest to reach "+pub.name, func() bool {
		n++
		pub.publishBatch(path, []ce{{ID: fmt.Sprint("probe-", n), Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}})
		for _, c := range cs {
			if c.count("probe") == 0 {
				return false
			}
		}
		return true
	})
}

// probeQueue publishes a probe event to the queue at path at pub until pub
// takes it: a consumer's interest has then reached pub. Until then a
// volatile queue event published there is refused, as there is no consumer.
func probeQueue(t *testing.T, pub *site, path string) {
	t.Helper()
	waitFor(t, 10*time.Second, "a consumer of "+path+" to be reachable from "+pub.name, func() bool {
		code, _ := pub.publishBatch(path, []ce{{ID: "probe", Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}})
		return code == 202
	})
}

func batch(typ, source string, from, n int) []ce {
	out := make([]ce, n)
	for i := range out {
		out[i] = ce{ID: fmt.Sprint(from + i), Source: source, Type: typ, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, from+i))}
	}
	return out
}

func wantExactlyOnce(t *testing.T, who string, ids []string, n int) {
	t.Helper()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("%s got %s twice", who, id)
		}
		seen[id] = true
	}
	if len(seen) != n {
		t.Errorf("%s got %d distinct events, want %d", who, len(seen), n)
	}
}

// TestEventsLine: on the line A-B-C, topic subscribers at B and C get every
// event published at A; a queue with consumers at B and C gets each event
// exactly once across them; wildcards select by subject.
func TestEventsLine(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(b)
	b.linkTo(c)
	if st := a.weft("status"); !strings.Contains(st, "events 127.0.0.1:") {
		t.Fatalf("status shows no event address:\n%s", st)
	}

	t.Run("topic", func(t *testing.T) {
		sb, sc := b.subscribeSSE(t, "/v1/topics/orders"), c.subscribeSSE(t, "/v1/topics/orders")
		probe(t, a, "/v1/topics/orders", sb, sc)
		for i := 0; i < 10; i++ {
			if code, body := a.publishBatch("/v1/topics/orders", batch("order", "/a", i*100, 100)); code != 202 {
				t.Fatalf("publish: %d %s", code, body)
			}
		}
		waitFor(t, 10*time.Second, "b and c to get 1000 events", func() bool { return sb.count("order") >= 1000 && sc.count("order") >= 1000 })
		wantExactlyOnce(t, "b", sb.ids("order"), 1000)
		wantExactlyOnce(t, "c", sc.ids("order"), 1000)
	})

	t.Run("queue", func(t *testing.T) {
		qb, qc := b.subscribeSSE(t, "/v1/queues/jobs"), c.subscribeSSE(t, "/v1/queues/jobs")
		probeQueue(t, a, "/v1/queues/jobs")
		for i := 0; i < 5; i++ {
			if code, body := a.publishBatch("/v1/queues/jobs", batch("job", "/a", i*100, 100)); code != 202 {
				t.Fatalf("publish: %d %s", code, body)
			}
		}
		waitFor(t, 10*time.Second, "500 jobs across b and c", func() bool { return qb.count("job")+qc.count("job") >= 500 })
		wantExactlyOnce(t, "b and c together", append(qb.ids("job"), qc.ids("job")...), 500)
	})

	t.Run("wildcards", func(t *testing.T) {
		star, gt := c.subscribeSSE(t, "/v1/topics/shop.*.created"), b.subscribeSSE(t, "/v1/topics/shop.>")
		probe(t, a, "/v1/topics/shop.probe.created", star, gt)
		a.publishBatch("/v1/topics/shop.eu.created", batch("w", "/a", 0, 1))
		a.publishBatch("/v1/topics/shop.eu.deleted", batch("w", "/a", 1, 1))
		a.publishBatch("/v1/topics/shop.eu.x.created", batch("w", "/a", 2, 1))
		a.publishBatch("/v1/topics/other", batch("w", "/a", 3, 1))
		waitFor(t, 10*time.Second, "wildcard deliveries", func() bool { return gt.count("w") >= 3 && star.count("w") >= 1 })
		if got := strings.Join(star.ids("w"), ","); got != "0" {
			t.Errorf("shop.*.created got %s, want 0", got)
		}
		if got := strings.Join(gt.ids("w"), ","); got != "0,1,2" {
			t.Errorf("shop.> got %s, want 0,1,2", got)
		}
	})

	t.Run("bad events", func(t *testing.T) {
		resp, err := http.Post(a.eventsURL()+"/v1/topics/orders", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), "binary mode") {
			t.Errorf("no CloudEvent: %d %s", resp.StatusCode, body)
		}
		big := batch("big", "/a", 0, 1)
		big[0].Data = json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`)
		if code, body := a.publishBatch("/v1/topics/orders", big); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "over") {
			t.Errorf("oversized: %d %s", code, body)
		}
	})
}

// TestEventsInterestSurvives: interest is kept across a restart of a peer, a
// TCP reset of a link, and a restart of the middle site of a chain.
func TestEventsInterestSurvives(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	// a reaches b through a proxy the test can reset.
	proxy := newResetProxy(t, b)
	a.linkToVia(b, proxy.addr)
	b.linkTo(c)
	sub := c.subscribeSSE(t, "/v1/topics/t")
	probe(t, a, "/v1/topics/t", sub)
	round := 0
	check := func(what string) {
		t.Helper()
		round++
		typ := fmt.Sprint("round-", round)
		waitFor(t, 20*time.Second, "c to get events again after "+what, func() bool {
			a.publishBatch("/v1/topics/t", batch(typ, "/a", 0, 1))
			return sub.count(typ) > 0
		})
	}
	proxy.reset()
	check("a TCP reset of a-b")
	b.stop(syscall.SIGKILL)
	b.start()
	check("a restart of the middle site b")
	// The subscriber's own site restarts: its subscription is a new one.
	c.stop(syscall.SIGTERM)
	c.start()
	sub = c.subscribeSSE(t, "/v1/topics/t")
	check("a restart of the peer c")
}

// resetProxy forwards TCP to a site's link address and can reset every
// connection it carries.
type resetProxy struct {
	addr  string
	mu    sync.Mutex
	conns []*net.TCPConn
}

func newResetProxy(t *testing.T, to *site) *resetProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target, _ := os.ReadFile(filepath.Join(to.dir, "link.addr"))
	p := &resetProxy{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close(); p.reset() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", string(target))
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c.(*net.TCPConn), u.(*net.TCPConn))
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

// reset closes every carried connection with an RST (linger 0).
func (p *resetProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.SetLinger(0)
		c.Close()
	}
	p.conns = nil
}

// linkToVia links s to issuer through addr instead of issuer's own address.
func (s *site) linkToVia(issuer *site, addr string) {
	s.t.Helper()
	tok := filepath.Join(s.t.TempDir(), "token.yaml")
	issuer.weft("token", "issue", "-o", tok)
	b, _ := os.ReadFile(tok)
	linkAddr, _ := os.ReadFile(filepath.Join(issuer.dir, "link.addr"))
	os.WriteFile(tok, bytes.ReplaceAll(b, linkAddr, []byte(addr)), 0o600)
	s.weft("link", "create", tok)
}

// sink is an HTTP server recording CloudEvents ids in arrival order; fail
// decides the status of each attempt.
type sink struct {
	url  string
	mu   sync.Mutex
	ids  []string
	hits atomic.Int64
}

func newSink(t *testing.T, fail func(id string, attempt int) int) *sink {
	s := &sink{}
	attempts := map[string]int{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		id := r.Header.Get("ce-id")
		s.mu.Lock()
		attempts[id]++
		n := attempts[id]
		s.mu.Unlock()
		if code := fail(id, n); code != 0 {
			w.WriteHeader(code)
			return
		}
		s.mu.Lock()
		s.ids = append(s.ids, id)
		s.mu.Unlock()
		w.WriteHeader(202)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.url = "http://" + ln.Addr().String() + "/"
	return s
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

// TestEventsPush: a push subscription retries 5xx with backoff until the sink
// takes the event, gives up at once on 400, and sends what failed to the
// dead-letter sink.
func TestEventsPush(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	a.linkTo(b)
	var firstTry, lastTry sync.Map
	main := newSink(t, func(id string, attempt int) int {
		now := time.Now()
		if attempt == 1 {
			firstTry.Store(id, now)
		}
		lastTry.Store(id, now)
		switch {
		case strings.HasPrefix(id, "flaky") && attempt <= 2:
			return 503
		case strings.HasPrefix(id, "bad"):
			return 400
		case strings.HasPrefix(id, "down"):
			return 500
		}
		return 0
	})
	dead := newSink(t, func(string, int) int { return 0 })
	b.weft("subscription", "create", "audit", "--topic", "audit.>", "--sink", main.url, "--retry", "3", "--backoff", "exponential", "--backoff-delay", "100ms", "--dead-letter", dead.url)
	waitFor(t, 15*time.Second, "the subscription's interest to reach a", func() bool {
		a.publishBatch("/v1/topics/audit.probe", []ce{{ID: fmt.Sprint("probe-", time.Now().UnixNano()), Source: "/p", Type: "probe", Data: json.RawMessage(`{}`)}})
		return len(main.got()) > 0
	})
	for _, id := range []string{"ok-1", "flaky-1", "bad-1", "down-1", "ok-2"} {
		if code, body := a.publishBatch("/v1/topics/audit.x", []ce{{ID: id, Source: "/a", Type: "t", Data: json.RawMessage(`{}`)}}); code != 202 {
			t.Fatalf("publish %s: %d %s", id, code, body)
		}
	}
	waitFor(t, 20*time.Second, "ok-2 at the sink and two dead letters", func() bool {
		return strings.Contains(strings.Join(main.got(), ","), "ok-2") && len(dead.got()) == 2
	})
	got := strings.Join(main.got(), ",")
	if !strings.Contains(got, "ok-1,flaky-1,ok-2") {
		t.Errorf("sink got %s; want ok-1, flaky-1 (after two 503s), ok-2 in order", got)
	}
	if d := strings.Join(dead.got(), ","); d != "bad-1,down-1" {
		t.Errorf("dead letters %s, want bad-1,down-1", d)
	}
	// down-1 was tried 1+3 times with 100, 200, 400 ms between: at least 700 ms.
	f, _ := firstTry.Load("down-1")
	l, _ := lastTry.Load("down-1")
	if span := l.(time.Time).Sub(f.(time.Time)); span < 700*time.Millisecond {
		t.Errorf("retries of down-1 spanned %v, want >= 700ms of backoff", span)
	}
	// bad-1 was not retried: first and last attempt are the same.
	f, _ = firstTry.Load("bad-1")
	l, _ = lastTry.Load("bad-1")
	if f != l {
		t.Errorf("a 400 was retried")
	}
}

// TestEventsPersistedFaults: 10,000 events published at A to a persisted topic
// while the B-C link is deleted and re-created and C is SIGKILLed and
// restarted; C's push subscriber gets all of them, each exactly once after
// dedup by id, in the publisher's order.
func TestEventsPersistedFaults(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(b)
	c.linkTo(b)
	a.weft("topic", "create", "ledger", "--delivery", "persisted")
	sk := newSink(t, func(string, int) int { return 0 })
	c.weft("subscription", "create", "s", "--topic", "ledger", "--sink", sk.url, "--backoff-delay", "50ms")
	waitFor(t, 15*time.Second, "c's interest to reach a", func() bool {
		a.publishBatch("/v1/topics/ledger", []ce{{ID: fmt.Sprint("probe-", time.Now().UnixNano()), Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}})
		return len(sk.got()) > 0
	})

	const total, per = 10000, 100
	var published atomic.Int64
	pubErr := make(chan error, 1)
	go func() {
		for i := 0; i < total; i += per {
			for {
				code, body := a.publishBatch("/v1/topics/ledger", batch("p", "/pub", i, per))
				if code == 202 {
					break
				}
				if code != 429 && code != 503 {
					pubErr <- fmt.Errorf("publish %d: %d %s", i, code, body)
					return
				}
			}
			published.Add(per)
		}
		pubErr <- nil
	}()
	at := func(n int64) {
		waitFor(t, 60*time.Second, fmt.Sprint(n, " events published"), func() bool { return published.Load() >= n })
	}
	at(2000)
	b.weft("link", "delete", "c")
	at(4000)
	c.linkTo(b)
	at(6000)
	c.stop(syscall.SIGKILL)
	at(8000)
	c.start()
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	var firsts []string
	waitFor(t, 90*time.Second, "all 10000 events at c's sink", func() bool {
		seen := map[string]bool{}
		firsts = firsts[:0]
		for _, id := range sk.got() {
			if !strings.HasPrefix(id, "probe") && !seen[id] {
				seen[id] = true
				firsts = append(firsts, id)
			}
		}
		return len(seen) == total
	})
	for i, id := range firsts {
		if id != fmt.Sprint(i) {
			t.Fatalf("event %d at the sink is %s: per-publisher order broken", i, id)
		}
	}
	t.Logf("%d deliveries for %d events (redeliveries after the faults are at least once)", len(sk.got()), total)
}
