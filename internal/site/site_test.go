package site

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/datadir"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/logbuf"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testSite is a site running in this process with its data in a temporary
// directory; it stops when the test ends.
type testSite struct {
	*Site
	t   testing.TB
	dir string
	log *logbuf.Buffer
	// stop ends the site and waits until it is down; it may be called
	// more than once.
	stop func()
}

func startSite(t *testing.T, name string) *testSite {
	t.Helper()
	return startSiteIn(t, name, t.TempDir())
}

func startSiteIn(t *testing.T, name, dir string) *testSite {
	t.Helper()
	return startSiteWith(t, Options{Name: name, DataDir: dir})
}

// startSiteWith starts a site with opts, logging to a buffer.
func startSiteWith(t testing.TB, opts Options) *testSite {
	t.Helper()
	log := &logbuf.Buffer{}
	name, dir := opts.Name, opts.DataDir
	opts.Logger = slog.New(slog.NewTextHandler(log, nil))
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("site %s: Run: %v", name, err)
		}
	})
	t.Cleanup(stop)
	return &testSite{Site: s, t: t, dir: dir, log: log, stop: stop}
}

// api calls the site's admin API and decodes the answer into out, if any; it
// returns the status and the error code of an error answer.
func (s *testSite) api(method, path string, body any, out any) (int, string) {
	s.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, "http://"+s.AdminAddr().String()+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var e apitype.ErrorBody
		json.Unmarshal(raw, &e)
		if e.Error.Code == "" || e.Error.Message == "" {
			s.t.Errorf("%s %s: %d answer is not the API's error shape: %s", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, e.Error.Code
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, ""
}

func connector(name string) resource.Connector {
	c := resource.Connector{Spec: resource.ConnectorSpec{Address: name, Target: "127.0.0.1:9"}}
	c.Name = name
	return c
}

func (s *testSite) putConnector(name string) (int, string) {
	return s.api("PUT", "/v1/connectors/"+name, connector(name), nil)
}

func (s *testSite) announces(address string) bool {
	for _, c := range s.svc.Advertised() {
		if c.Address == address {
			return true
		}
	}
	return false
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A second process on the same data directory must stop at once and say
// which process holds it, not hang on the event store or share state.
func TestSecondSiteOnDataDirectoryRefused(t *testing.T) {
	s := startSite(t, "a")
	_, err := New(Options{Name: "a", DataDir: s.dir})
	if !errors.Is(err, datadir.ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("in use by pid %d", os.Getpid())) {
		t.Fatalf("second New: %v", err)
	}
}

// A change whose save fails is refused with an error, and not made: after a
// restart nothing would bring it back, so it must not take effect now.
func TestFailedSaveRefusesTheChange(t *testing.T) {
	s := startSite(t, "a")
	if code, _ := s.putConnector("kept"); code != 200 {
		t.Fatalf("first connector: %d", code)
	}
	// A directory where the state file goes makes every save fail.
	stateFile := filepath.Join(s.dir, stateFile)
	if err := os.Remove(stateFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(stateFile, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		name   string
		do     func() (int, string)
		undone func() bool
	}{
		{"create connector", func() (int, string) { return s.putConnector("lost") },
			func() bool { return !s.announces("lost") && len(s.Connectors()) == 1 }},
		{"delete connector", func() (int, string) { return s.api("DELETE", "/v1/connectors/kept", nil, nil) },
			func() bool { return s.announces("kept") && len(s.Connectors()) == 1 }},
		{"create listener", func() (int, string) {
			l := resource.Listener{Spec: resource.ListenerSpec{Address: "x", Host: "127.0.0.1"}}
			return s.api("PUT", "/v1/listeners/x", l, nil)
		}, func() bool { _, bound := s.svc.ListenerAddr("x"); return !bound && len(s.Listeners()) == 0 }},
		{"issue token", func() (int, string) { return s.api("POST", "/v1/tokens", apitype.TokenRequest{}, nil) },
			func() bool { return len(s.state().Tokens.Tokens()) == 0 }},
	} {
		code, errCode := call.do()
		if code != http.StatusInternalServerError || errCode != "NotSaved" {
			t.Errorf("%s with a failing disk: %d %s, want 500 NotSaved", call.name, code, errCode)
		}
		if !call.undone() {
			t.Errorf("%s: the refused change was made anyway", call.name)
		}
	}
	if err := os.Remove(stateFile); err != nil {
		t.Fatal(err)
	}
	if code, _ := s.putConnector("later"); code != 200 || !s.announces("later") {
		t.Fatalf("once the disk is back: %d", code)
	}
}

func TestLimitsAreRefusedAndCounted(t *testing.T) {
	defer func(c, l, k int) { maxConnectors, maxListeners, maxTokens = c, l, k }(maxConnectors, maxListeners, maxTokens)
	maxConnectors, maxListeners, maxTokens = 3, 1, 1
	s := startSite(t, "a")
	for i := range 3 {
		if code, _ := s.putConnector(fmt.Sprint("c", i)); code != 200 {
			t.Fatalf("connector %d: %d", i, code)
		}
	}
	if code, errCode := s.putConnector("c3"); code != http.StatusConflict || errCode != "LimitReached" {
		t.Errorf("connector over the limit: %d %s, want 409 LimitReached", code, errCode)
	}
	// Replacing one that exists is no new connector.
	if code, _ := s.putConnector("c1"); code != 200 {
		t.Errorf("replacing a connector at the limit: %d", code)
	}
	l := resource.Listener{Spec: resource.ListenerSpec{Address: "x", Host: "127.0.0.1"}}
	if code, _ := s.api("PUT", "/v1/listeners/l1", l, nil); code != 200 {
		t.Fatalf("listener: %d", code)
	}
	if code, errCode := s.api("PUT", "/v1/listeners/l2", l, nil); code != http.StatusConflict || errCode != "LimitReached" {
		t.Errorf("listener over the limit: %d %s", code, errCode)
	}
	if _, bound := s.svc.ListenerAddr("l2"); bound {
		t.Error("the refused listener was bound")
	}
	if code, _ := s.api("POST", "/v1/tokens", apitype.TokenRequest{}, nil); code != 200 {
		t.Fatalf("token: %d", code)
	}
	if code, errCode := s.api("POST", "/v1/tokens", apitype.TokenRequest{}, nil); code != http.StatusConflict || errCode != "LimitReached" {
		t.Errorf("token over the limit: %d %s", code, errCode)
	}
	if code, errCode := s.api("POST", "/v1/tokens", apitype.TokenRequest{Uses: new(5000)}, nil); code != http.StatusBadRequest {
		t.Errorf("token of 5000 uses: %d %s, want 400", code, errCode)
	}
	for limit, want := range map[string]float64{"connectors": 1, "listeners": 1, "tokens": 1} {
		if got := testutil.ToFloat64(s.metrics.LimitRefusals.WithLabelValues(limit)); got != want {
			t.Errorf("weft_limit_refusals_total{limit=%q} = %v, want %v", limit, got, want)
		}
	}
}

// Connectors whose addresses would make the site record too large for the
// network are refused where they arrive, not by the router later.
func TestRecordSizeIsCheckedAtInput(t *testing.T) {
	s := startSite(t, "a")
	var cs []resource.Connector
	long := strings.Repeat("a", routing.MaxAddressLen-8)
	for i := 0; len(cs)*len(long) <= routing.MaxRecordSize; i++ {
		cs = append(cs, connector(fmt.Sprintf("%s%08d", long, i)))
	}
	var lim *LimitError
	if err := s.checkRecord(cs); !errors.As(err, &lim) {
		t.Fatalf("checkRecord of %d long addresses: %v", len(cs), err)
	}
	if err := s.checkRecord(cs[:10]); err != nil {
		t.Fatalf("checkRecord of 10: %v", err)
	}
}

// Bad bodies get a 4xx in the API's error shape and the site keeps serving.
func TestAdminAPIRefusesBadBodies(t *testing.T) {
	s := startSite(t, "a")
	good := `{"spec":{"address":"x","target":"127.0.0.1:9"}}`
	for name, body := range map[string]string{
		"oversize":       `{"spec":{"address":"x","target":"127.0.0.1:9"},"metadata":{"annotations":{"a":"` + strings.Repeat("x", maxBody) + `"}}}`,
		"deep":           strings.Repeat("[", 100_000),
		"deep object":    strings.Repeat(`{"a":`, 20_000),
		"unknown field":  `{"spec":{"address":"x","target":"127.0.0.1:9","bogus":1}}`,
		"wrong type":     `{"spec":{"address":7}}`,
		"trailing":       good + `{}`,
		"stray bracket":  good + `]`,
		"stray brace":    good + `}`,
		"garbage":        "\x00\xff",
		"empty":          "",
		"name mismatch":  `{"metadata":{"name":"other"},"spec":{"address":"x","target":"127.0.0.1:9"}}`,
		"invalid target": `{"spec":{"address":"x","target":"nowhere"}}`,
	} {
		code, errCode := s.api("PUT", "/v1/connectors/x", body, nil)
		if code < 400 || code >= 500 {
			t.Errorf("%s: %d %s, want 4xx", name, code, errCode)
		}
	}
	if code, _ := s.api("PUT", "/v1/connectors/x", good, nil); code != 200 {
		t.Fatalf("after the bad bodies a good one got %d", code)
	}
	if code, _ := s.api("GET", "/v1/status", nil, &apitype.Status{}); code != 200 {
		t.Fatalf("status after bad bodies: %d", code)
	}
}

// The reproduction of a crash: a client opens 4,097 event stream
// subscriptions to distinct topics, one after another, each closed at once.
// The site used to announce more interests than a site record may hold and
// panic in the router. Now the interests stay within their limit, the site
// keeps serving, and a client holding too many streams at once gets 429.
func TestManySubscriptionsDoNotTakeTheSiteDown(t *testing.T) {
	s := startSite(t, "a")
	events := "http://" + s.EventsAddr().String()
	subscribe := func(topic string) (*http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", events+"/v1/topics/"+topic+"/events", nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil && resp.StatusCode == 200 {
			cancel() // closed at once, as the reproduction does
		}
		return resp, err
	}
	for i := range routing.MaxInterests + 1 {
		resp, err := subscribe(fmt.Sprint("t", i))
		if err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("subscription %d: %d", i, resp.StatusCode)
		}
	}
	if n := len(s.events.Interests()); n > broker.DefaultMaxInterests {
		t.Fatalf("the broker announces %d interests, over its limit of %d", n, broker.DefaultMaxInterests)
	}
	waitFor(t, "the site record to carry the interests", func() bool {
		for _, r := range s.Table().Records() {
			if r.Site == s.ID() {
				return len(r.Interests) > 0 && len(r.Interests) <= broker.DefaultMaxInterests
			}
		}
		return false
	})
	if got := testutil.ToFloat64(s.metrics.LimitRefusals.WithLabelValues("record")); got != 0 {
		t.Errorf("the router refused %v site records", got)
	}
	// Streams held open count against the per-client limit.
	var held []*http.Response
	defer func() {
		for _, r := range held {
			r.Body.Close()
		}
	}()
	for i := range broker.DefaultMaxSubscriptionsPerClient + 1 {
		req, _ := http.NewRequest("GET", events+"/v1/topics/held"+fmt.Sprint(i)+"/events", nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, resp)
		if i < broker.DefaultMaxSubscriptionsPerClient && resp.StatusCode != 200 {
			t.Fatalf("held stream %d: %d", i, resp.StatusCode)
		}
		if i == broker.DefaultMaxSubscriptionsPerClient && resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("stream over the per-client limit: %d, want 429", resp.StatusCode)
		}
	}
	if code, _ := s.api("GET", "/v1/status", nil, &apitype.Status{}); code != 200 {
		t.Fatalf("status: %d", code)
	}
}

// A refusal that arrives for a link's old credential after the link was
// re-created under the same name (the old dialer's last session) does not
// mark the new link refused, which would keep a restarted site from
// dialing it.
func TestRefusalOfReplacedCredential(t *testing.T) {
	s := startSite(t, "a")
	old := outboundLink{Name: "b", IssuerID: "x", CertPEM: "old cert"}
	recreated := outboundLink{Name: "b", IssuerID: "x", CertPEM: "new cert"}
	if err := s.commit(func(st *state) error {
		st.Outbound = append(st.Outbound, recreated)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.saveRefusal(old, "revoked")
	if got := s.outbound("b"); got == nil || got.Refused != "" {
		t.Fatalf("re-created link after the old credential's refusal: %+v, want not refused", got)
	}
	s.saveRefusal(recreated, "revoked")
	if got := s.outbound("b"); got == nil || got.Refused != "revoked" {
		t.Fatalf("link after its own credential's refusal: %+v, want refused", got)
	}
}
