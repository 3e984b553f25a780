package broker

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"weft.dev/weft/internal/events"
)

// grants is an Authorize of fixed credentials, recording what it was asked.
type grants struct {
	mu    sync.Mutex
	asked []string
	perms map[string]map[Access][]string
}

func (g *grants) authorize(cred string, a Access, subject string) error {
	g.mu.Lock()
	g.asked = append(g.asked, fmt.Sprintf("%s %s %s", cred, a, subject))
	g.mu.Unlock()
	p, ok := g.perms[cred]
	if !ok {
		return fmt.Errorf("%w: unknown credential", ErrUnauthenticated)
	}
	if slices.ContainsFunc(p[a], func(have string) bool { return events.Covers(have, subject) }) {
		return nil
	}
	return fmt.Errorf("%w: may not %s %q", ErrForbidden, a, subject)
}

// TestAuthorize: with Config.Authorize, a publish or subscription without a
// known credential is a 401 that asks for a bearer token, one outside the
// credential's patterns a 403, and one inside them is served; queue
// consumers are subscribers. Each refusal is counted by access and reason.
func TestAuthorize(t *testing.T) {
	g := &grants{perms: map[string]map[Access][]string{
		"pub": {Publish: {"orders.>", "jobs"}},
		"sub": {Subscribe: {"orders.*", "jobs"}},
	}}
	m := newMesh(t, []string{"a"}, nil, func(c *Config) { c.Authorize = g.authorize })
	a := m.site("a")
	h := a.b.Handler()
	publish := func(path, auth string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader("x"))
		for k, v := range ce {
			r.Header.Set(k, v)
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, tc := range []struct {
		name, path, auth string
		status           int
		code, challenge  string
	}{
		{"no credential", "/v1/topics/orders.created", "", 401, "Unauthorized", `Bearer realm="weft-events"`},
		{"unknown credential", "/v1/topics/orders.created", "Bearer nope", 401, "Unauthorized", `Bearer realm="weft-events"`},
		{"not a bearer", "/v1/topics/orders.created", "Basic cHViOg==", 401, "Unauthorized", `Bearer realm="weft-events"`},
		{"outside the patterns", "/v1/topics/payments.made", "Bearer pub", 403, "Forbidden", `Bearer realm="weft-events", error="insufficient_scope"`},
		{"subscribe-only credential", "/v1/events/orders.created", "Bearer sub", 403, "Forbidden", `Bearer realm="weft-events", error="insufficient_scope"`},
		{"inside the patterns", "/v1/topics/orders.created", "Bearer pub", 202, "", ""},
		{"by name, scheme in any case", "/v1/events/orders.eu.created", "bearer pub", 202, "", ""},
	} {
		w := publish(tc.path, tc.auth)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.code) || w.Header().Get("WWW-Authenticate") != tc.challenge {
			t.Errorf("%s: %d %q WWW-Authenticate %q, want %d %s %q", tc.name, w.Code, w.Body, w.Header().Get("WWW-Authenticate"), tc.status, tc.code, tc.challenge)
		}
	}
	for _, tc := range []struct {
		name, path, auth string
		status           int
	}{
		{"no credential", "/v1/topics/orders.*/events", "", 401},
		{"a wider pattern than granted", "/v1/topics/orders.>/events", "Bearer sub", 403},
		{"publish-only credential", "/v1/events/orders.created", "Bearer pub", 403},
		{"queue consumer without the queue", "/v1/queues/other/events", "Bearer sub", 403},
		{"inside the patterns", "/v1/topics/orders.*/events", "Bearer sub", 200},
		{"queue consumer", "/v1/queues/jobs/events", "Bearer sub", 200},
	} {
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		s := get(t, h, tc.path, "192.0.2.1:1", hdr...)
		s.close()
		if s.status != tc.status {
			t.Errorf("subscribe %s: %d %q, want %d", tc.name, s.status, s.rec.String(), tc.status)
		}
	}
	g.mu.Lock()
	asked := slices.Clone(g.asked)
	g.mu.Unlock()
	for _, want := range []string{"pub publish orders.eu.created", "sub subscribe orders.*", "sub subscribe jobs", " publish orders.created"} {
		if !slices.Contains(asked, want) {
			t.Errorf("Authorize was not asked %q; it was asked %q", want, asked)
		}
	}
	for _, c := range []struct {
		access, reason string
		n              float64
	}{{"publish", "unauthenticated", 3}, {"publish", "forbidden", 2}, {"subscribe", "unauthenticated", 1}, {"subscribe", "forbidden", 3}} {
		if got := testutil.ToFloat64(a.b.m.authRefused.WithLabelValues(c.access, c.reason)); got != c.n {
			t.Errorf("weft_events_auth_refused_total{access=%q,reason=%q} = %v, want %v", c.access, c.reason, got, c.n)
		}
	}
}

// TestNoAuthorizeIsOpen: without Config.Authorize the event API takes
// anyone, as before credentials existed.
func TestNoAuthorizeIsOpen(t *testing.T) {
	m := newMesh(t, []string{"a"}, nil)
	r := httptest.NewRequest("POST", "/v1/topics/orders", strings.NewReader("x"))
	for k, v := range ce {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	m.site("a").b.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusAccepted {
		t.Fatalf("open publish: %d %s", w.Code, w.Body)
	}
}
