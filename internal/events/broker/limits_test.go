package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
)

// streamRecorder is a ResponseWriter for a request served in a goroutine of
// its own, as a stream is: safe to read while the handler writes.
type streamRecorder struct {
	mu       sync.Mutex
	header   http.Header
	status   int
	body     bytes.Buffer
	answered chan struct{} // closed at the first flush
	once     sync.Once
}

func newStreamRecorder() *streamRecorder {
	return &streamRecorder{header: http.Header{}, answered: make(chan struct{})}
}

func (r *streamRecorder) Header() http.Header { return r.header }

func (r *streamRecorder) WriteHeader(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == 0 {
		r.status = status
	}
}

func (r *streamRecorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.Write(b)
}

func (r *streamRecorder) Flush() { r.once.Do(func() { close(r.answered) }) }

func (r *streamRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.String()
}

// openStream is a client's request to h, served until close: a stream
// answers and stays open, a refusal answers and ends.
type openStream struct {
	rec    *streamRecorder
	status int
	cancel context.CancelFunc
	done   chan struct{}
}

// get requests path from the client address remote and returns once the
// handler answered: flushed a stream's first bytes or returned.
func get(t testing.TB, h http.Handler, path, remote string, header ...string) *openStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	req.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	s := &openStream{rec: newStreamRecorder(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		h.ServeHTTP(s.rec, req)
	}()
	select {
	case <-s.rec.answered:
	case <-s.done:
	case <-time.After(10 * time.Second):
		cancel()
		<-s.done
		t.Fatalf("GET %s from %s: no answer", path, remote)
	}
	s.rec.mu.Lock()
	s.status = s.rec.status
	s.rec.mu.Unlock()
	return s
}

// close ends the request, as a client that goes, and waits for the handler.
func (s *openStream) close() {
	s.cancel()
	<-s.done
}

// apiErr decodes a refusal's body.
func (s *openStream) apiErr(t testing.TB) apiError {
	t.Helper()
	<-s.done
	var body struct{ Error apiError }
	if err := json.Unmarshal([]byte(s.rec.String()), &body); err != nil {
		t.Fatalf("refusal body %q: %v", s.rec.String(), err)
	}
	return body.Error
}

// wantRefused checks a 429 with the code, Retry-After, and a message
// naming the limit's value.
func (s *openStream) wantRefused(t testing.TB, code string, limit int) {
	t.Helper()
	if s.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429 %s; body %q", s.status, code, s.rec.String())
	}
	e := s.apiErr(t)
	if e.Code != code || !strings.Contains(e.Message, fmt.Sprintf("limit is %d", limit)) {
		t.Errorf("refusal %+v, want code %s and a message naming the limit %d", e, code, limit)
	}
	if s.rec.Header().Get("Retry-After") == "" {
		t.Errorf("refusal %s without Retry-After", code)
	}
}

func refused(s *meshSite, limit string) float64 {
	return testutil.ToFloat64(s.b.m.refused.WithLabelValues(limit))
}

// TestDepartedSubscriptionsStayUnderInterestLimit: SSE subscriptions to
// more distinct topics than a site record can carry, each closed at once,
// made the site announce every pattern (their interest lingers) until its
// router panicked. Lingering interests count toward MaxInterests and yield
// to new subscriptions: every subscription is served, the announced
// interests never pass the limit, and the broker keeps serving.
func TestDepartedSubscriptionsStayUnderInterestLimit(t *testing.T) {
	m := newMesh(t, []string{"a", "b"}, [][3]int{{1, 2, 1}})
	a := m.site("a")
	h := a.b.Handler()
	for i := range routing.MaxInterests + 100 {
		s := get(t, h, fmt.Sprintf("/v1/topics/t%d/events", i), "192.0.2.1:40000")
		if s.status != http.StatusOK {
			t.Fatalf("subscription %d: status %d: %s", i, s.status, s.rec.String())
		}
		s.close()
		if n := len(a.b.Interests()); n > DefaultMaxInterests {
			t.Fatalf("after %d subscriptions the broker announces %d interests, limit %d", i+1, n, DefaultMaxInterests)
		}
	}
	if got := refused(a, limitInterests); got != 0 {
		t.Errorf("%v subscriptions refused: departed ones should have made room", got)
	}
	if got := a.maxAnnounced(); got > DefaultMaxInterests {
		t.Errorf("the site announced %d interests, limit %d", got, DefaultMaxInterests)
	}
	streamStillServes(t, m, a, "192.0.2.1:40000")
}

// streamStillServes checks that a new subscription at s gets what the
// other site publishes.
func streamStillServes(t *testing.T, m *mesh, s *meshSite, remote string) {
	t.Helper()
	st := get(t, s.b.Handler(), "/v1/topics/still.serving/events", remote)
	defer st.close()
	if st.status != http.StatusOK {
		t.Fatalf("a new subscription: status %d: %s", st.status, st.rec.String())
	}
	waitFor(t, "the new interest to be announced", func() bool { return slices.Contains(s.announced(), "t:still.serving") })
	for _, o := range m.sites {
		if o != s {
			publish(t, o, events.Topic, "still.serving", 0, 1)
			break
		}
	}
	waitFor(t, "the event on the new stream", func() bool { return strings.Contains(st.rec.String(), `"id":"0"`) })
}

// TestLiveSubscriptionsBeyondInterestLimitRefused: live SSE subscriptions
// to distinct topics, spread over client addresses so that no other limit
// applies, are served up to MaxInterests and answered 429 past it; a
// pattern announced already is still served, and a departed subscriber's
// pattern makes room for a new one.
func TestLiveSubscriptionsBeyondInterestLimitRefused(t *testing.T) {
	m := newMesh(t, []string{"a", "b"}, [][3]int{{1, 2, 1}})
	a := m.site("a")
	h := a.b.Handler()
	n := routing.MaxInterests + 1
	var live []*openStream
	defer func() {
		for _, s := range live {
			s.close()
		}
	}()
	for i := range n {
		s := get(t, h, fmt.Sprintf("/v1/topics/t%d/events", i), fmt.Sprintf("198.51.100.%d:40000", i%64))
		if i < DefaultMaxInterests {
			if s.status != http.StatusOK {
				t.Fatalf("subscription %d under the limit: status %d: %s", i, s.status, s.rec.String())
			}
			live = append(live, s)
			continue
		}
		s.wantRefused(t, "TooManyInterests", DefaultMaxInterests)
		if t.Failed() {
			t.FailNow()
		}
	}
	if got, want := refused(a, limitInterests), float64(n-DefaultMaxInterests); got != want {
		t.Errorf("refused_total{limit=interests} = %v, want %v", got, want)
	}
	if got := len(a.b.Interests()); got != DefaultMaxInterests {
		t.Errorf("announcing %d interests, want the limit, %d", got, DefaultMaxInterests)
	}

	// Another subscriber to a pattern held already adds no interest.
	again := get(t, h, "/v1/topics/t0/events", "203.0.113.1:40000")
	defer again.close()
	if again.status != http.StatusOK {
		t.Errorf("a second subscriber to t0: status %d: %s", again.status, again.rec.String())
	}
	// One that leaves makes room: its interest lingers, and yields.
	live[1].close()
	live = slices.Delete(live, 1, 2)
	s := get(t, h, "/v1/topics/newcomer/events", "203.0.113.1:40000")
	defer s.close()
	if s.status != http.StatusOK {
		t.Fatalf("a new pattern once a subscriber left: status %d: %s", s.status, s.rec.String())
	}
	if in := a.b.Interests(); slices.Contains(in, "t:t1") || !slices.Contains(in, "t:newcomer") || len(in) != DefaultMaxInterests {
		t.Errorf("after t1 left and newcomer came: %d interests, t:t1 %v, t:newcomer %v", len(in), slices.Contains(in, "t:t1"), slices.Contains(in, "t:newcomer"))
	}
	if got := a.maxAnnounced(); got > DefaultMaxInterests {
		t.Errorf("the site announced %d interests, limit %d", got, DefaultMaxInterests)
	}
	streamStillServesAfterClosing(t, m, a, &live)
}

// streamStillServesAfterClosing closes the live streams, which frees the
// interest limit, and checks that the site serves a new one.
func streamStillServesAfterClosing(t *testing.T, m *mesh, a *meshSite, live *[]*openStream) {
	t.Helper()
	for _, s := range *live {
		s.close()
	}
	*live = nil
	streamStillServes(t, m, a, "203.0.113.9:40000")
}

// TestSubscriptionLimitsPerClientAndTotal: a client address gets 429 past
// MaxSubscriptionsPerClient live streams, SSE or WebSocket, and every
// client past MaxSubscriptions; a stream that ends gives its place back.
func TestSubscriptionLimitsPerClientAndTotal(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil, func(c *Config) { c.MaxSubscriptions, c.MaxSubscriptionsPerClient = 5, 3 })
	a := m.site("a")
	h := a.b.Handler()
	const path = "/v1/topics/x/events"
	var live []*openStream
	defer func() {
		for _, s := range live {
			s.close()
		}
	}()
	open := func(remote string) {
		t.Helper()
		s := get(t, h, path, remote)
		if s.status != http.StatusOK {
			t.Fatalf("from %s: status %d: %s", remote, s.status, s.rec.String())
		}
		live = append(live, s)
	}
	for range 3 {
		open("192.0.2.1:1")
	}
	get(t, h, path, "192.0.2.1:2").wantRefused(t, "TooManyClientSubscriptions", 3)
	// A WebSocket is refused before the upgrade.
	get(t, h, path, "192.0.2.1:3", "Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").
		wantRefused(t, "TooManyClientSubscriptions", 3)
	open("192.0.2.2:1")
	open("[2001:db8::1]:1")
	get(t, h, path, "192.0.2.3:1").wantRefused(t, "TooManySubscriptions", 5)
	if got := refused(a, limitClientSubscription); got != 2 {
		t.Errorf("refused_total{limit=subscriptions_per_client} = %v, want 2", got)
	}
	if got := refused(a, limitSubscriptions); got != 1 {
		t.Errorf("refused_total{limit=subscriptions} = %v, want 1", got)
	}
	live[0].close()
	live = live[1:]
	open("192.0.2.3:1")
	// 192.0.2.1 has 2 now: one more fits its own limit, not the total.
	get(t, h, path, "192.0.2.1:4").wantRefused(t, "TooManySubscriptions", 5)
}

// TestRefusalOverHTTP: the 429 reaches a client over a real connection as
// JSON with Retry-After.
func TestRefusalOverHTTP(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil, func(c *Config) { c.MaxSubscriptionsPerClient = 1 })
	srv := httptest.NewServer(m.site("a").b.Handler())
	defer srv.Close()
	first, err := http.Get(srv.URL + "/v1/topics/x/events")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	if line, _ := bufio.NewReader(first.Body).ReadString('\n'); first.StatusCode != http.StatusOK || line != ": subscribed\n" {
		t.Fatalf("first subscription: %d %q", first.StatusCode, line)
	}
	second, err := http.Get(srv.URL + "/v1/topics/x/events")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Body.Close()
	var body struct{ Error apiError }
	derr := json.NewDecoder(second.Body).Decode(&body)
	if second.StatusCode != http.StatusTooManyRequests || second.Header.Get("Retry-After") != "5" || second.Header.Get("Content-Type") != "application/json" || derr != nil ||
		body.Error.Code != "TooManyClientSubscriptions" || !strings.Contains(body.Error.Message, "limit is 1 per address") {
		t.Errorf("second subscription: %d, Retry-After %q, %q, %+v (%v)", second.StatusCode, second.Header.Get("Retry-After"), second.Header.Get("Content-Type"), body.Error, derr)
	}
}

// TestPushSubscriptionInterestLimit: a push subscription whose pattern
// would pass MaxInterests is refused with ErrTooManyInterests (429), one
// that replaces another's pattern is not, and a pattern that is not valid
// is a bad subject (400), never announced.
func TestPushSubscriptionInterestLimit(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil, func(c *Config) { c.MaxInterests = 3 })
	a := m.site("a")
	for _, p := range []string{"a", "b"} {
		s, err := a.b.subscribe(events.Topic, p, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		defer a.b.unsubscribe(s)
	}
	put := func(name, topic string) error {
		var s resource.Subscription
		s.Name, s.Spec = name, resource.SubscriptionSpec{Topic: topic, Sink: "http://127.0.0.1:1/"}
		return a.b.PutSubscription(s)
	}
	if err := put("c", "c.>"); err != nil {
		t.Fatalf("the third pattern: %v", err)
	}
	err := put("d", "d")
	if !errors.Is(err, ErrTooManyInterests) || !strings.Contains(err.Error(), "limit is 3") || toAPIError(err).Status != http.StatusTooManyRequests {
		t.Errorf("a fourth pattern: %v (%d), want ErrTooManyInterests naming the limit 3, 429", err, toAPIError(err).Status)
	}
	if err := put("c", "d"); err != nil {
		t.Errorf("replacing c's pattern: %v", err)
	}
	if err := put("e", "a"); err != nil {
		t.Errorf("a pattern held already: %v", err)
	}
	err = put("bad", "a..b")
	if !errors.Is(err, events.ErrBadSubject) || toAPIError(err).Status != http.StatusBadRequest {
		t.Errorf("a bad pattern: %v, want ErrBadSubject (400)", err)
	}
	if got, want := a.b.Interests(), []string{"t:a", "t:b", "t:d"}; !slices.Equal(got, want) {
		t.Errorf("interests %v, want %v", got, want)
	}
	if _, _, ss := a.b.Config(); len(ss) != 2 {
		t.Errorf("%d subscriptions stored, want 2 (c, e)", len(ss))
	}
}

// TestLingeringInterestYields: the interests of departed subscribers count
// toward MaxInterests until a new pattern needs the room: the one that would
// end soonest goes first; live subscribers never yield.
func TestLingeringInterestYields(t *testing.T) {
	clk := newFakeClock()
	m := newMesh(t, []string{"a"}, nil, withClock(clk), func(c *Config) { c.MaxInterests = 2 })
	a := m.site("a")
	sub := func(p string) *subscriber {
		t.Helper()
		s, err := a.b.subscribe(events.Topic, p, "192.0.2.1")
		if err != nil {
			t.Fatalf("subscribe %s: %v", p, err)
		}
		return s
	}
	a.b.unsubscribe(sub("a"))
	clk.Step(time.Second)
	a.b.unsubscribe(sub("b"))
	if got := a.b.Interests(); !slices.Equal(got, []string{"t:a", "t:b"}) {
		t.Fatalf("lingering: %v", got)
	}
	c := sub("c")
	defer a.b.unsubscribe(c)
	if got := a.b.Interests(); !slices.Equal(got, []string{"t:b", "t:c"}) {
		t.Errorf("after c: %v, want a, lingering longest, gone", got)
	}
	d := sub("d")
	defer a.b.unsubscribe(d)
	if _, err := a.b.subscribe(events.Topic, "e", "192.0.2.1"); !errors.Is(err, ErrTooManyInterests) {
		t.Errorf("a third live pattern: %v, want ErrTooManyInterests", err)
	}
	if got := a.b.Interests(); !slices.Equal(got, []string{"t:c", "t:d"}) {
		t.Errorf("after d: %v", got)
	}
}

// TestInterestLimitBounded: a limit above what a record carries is refused.
func TestInterestLimitBounded(t *testing.T) {
	st, err := store.Open(t.TempDir()+"/s.db", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = New(Config{Self: sid(1), Store: st, MaxInterests: routing.MaxInterests + 1})
	if err == nil || !strings.Contains(err.Error(), "routing.MaxInterests") {
		t.Errorf("MaxInterests over routing.MaxInterests: %v", err)
	}
}
