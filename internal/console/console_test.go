package console

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const secret = "s3cret-token"

// newServer serves a console whose snapshot counts its calls.
func newServer(t *testing.T) (*httptest.Server, chan struct{}) {
	t.Helper()
	done := make(chan struct{})
	n := 0
	c := New(Config{
		Kind: KindSite, Title: "site test",
		Check: func(_ context.Context, cred string) bool { return cred == secret },
		Snapshot: func(_ context.Context, cred string) (any, error) {
			n++
			return map[string]any{"n": n, "cred": cred == secret}, nil
		},
		Interval: 10 * time.Millisecond,
		Done:     done,
	})
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		close(done)
		srv.Close()
	})
	return srv, done
}

// client keeps cookies and does not follow redirects, so that tests see
// them.
func client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestLoginFlow(t *testing.T) {
	srv, _ := newServer(t)
	c := client(t)

	resp, _ := get(t, c, srv.URL+"/")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("/ without a session: %d %q, want a redirect to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get(t, c, srv.URL+"/console/api/snapshot")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"Unauthorized"`) {
		t.Fatalf("snapshot without a session: %d %s", resp.StatusCode, body)
	}
	resp, _ = get(t, c, srv.URL+"/console/events")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("events without a session: %d", resp.StatusCode)
	}

	resp = postForm(t, c, srv.URL+"/login", url.Values{"credential": {"wrong"}}, srv.URL)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "Wrong credential") {
		t.Fatalf("wrong credential: %d %s", resp.StatusCode, b)
	}
	if len(resp.Cookies()) != 0 {
		t.Fatalf("wrong credential set cookies %v", resp.Cookies())
	}

	resp = postForm(t, c, srv.URL+"/login", url.Values{"credential": {secret}}, srv.URL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Value == secret || strings.Contains(ck[0].Value, secret) {
		t.Fatalf("session cookie %+v: want one HttpOnly SameSite=Strict cookie that is not the credential", ck)
	}
	resp, body = get(t, c, srv.URL+"/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "/console/static/site.js") {
		t.Fatalf("page after login: %d %s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("page CSP %q", csp)
	}
	resp, body = get(t, c, srv.URL+"/console/api/snapshot")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"cred":true`) {
		t.Fatalf("snapshot after login: %d %s", resp.StatusCode, body)
	}

	resp = postForm(t, c, srv.URL+"/logout", nil, srv.URL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, c, srv.URL+"/console/api/snapshot"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("snapshot after logout: %d", resp.StatusCode)
	}
}

// A page on another origin cannot log a browser in (login CSRF) or out.
func TestCrossOriginRefused(t *testing.T) {
	srv, _ := newServer(t)
	c := client(t)
	resp := postForm(t, c, srv.URL+"/login", url.Values{"credential": {secret}}, "http://evil.example")
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("cross-origin login: %d %v, want 403 and no cookie", resp.StatusCode, resp.Cookies())
	}
	postForm(t, c, srv.URL+"/login", url.Values{"credential": {secret}}, srv.URL)
	if resp := postForm(t, c, srv.URL+"/logout", nil, "http://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin logout: %d, want 403", resp.StatusCode)
	}
	if resp, _ := get(t, c, srv.URL+"/console/api/snapshot"); resp.StatusCode != http.StatusOK {
		t.Fatalf("session ended by a cross-origin logout: %d", resp.StatusCode)
	}
}

func TestAssets(t *testing.T) {
	srv, _ := newServer(t)
	c := client(t)
	for path, want := range map[string]int{
		"/console/static/console.js":  http.StatusOK,
		"/console/static/console.css": http.StatusOK,
		"/console/static/site.js":     http.StatusOK,
		"/console/static/page.html":   http.StatusNotFound,
		"/console/static/":            http.StatusNotFound,
	} {
		if resp, _ := get(t, c, srv.URL+path); resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestLoginBodyBounded(t *testing.T) {
	srv, _ := newServer(t)
	resp := postForm(t, client(t), srv.URL+"/login", url.Values{"credential": {strings.Repeat("x", maxLoginBody+1)}}, srv.URL)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("oversized login: %d, want 400", resp.StatusCode)
	}
}

// The event stream sends snapshots as they come and ends with "logout"
// once the session ends.
func TestEventStream(t *testing.T) {
	srv, _ := newServer(t)
	c := client(t)
	postForm(t, c, srv.URL+"/login", url.Values{"credential": {secret}}, srv.URL)
	resp, err := c.Get(srv.URL + "/console/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	next := func() (event string, data map[string]any) {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(line[len("data: "):]), &data); err != nil {
					t.Fatal(err)
				}
			case line == "":
				return event, data
			}
		}
	}
	var last float64
	for range 3 {
		ev, d := next()
		if ev != "snapshot" || d["n"].(float64) <= last {
			t.Fatalf("event %q %v after n=%v", ev, d, last)
		}
		last = d["n"].(float64)
	}
	postForm(t, c, srv.URL+"/logout", nil, srv.URL)
	for {
		ev, _ := next()
		if ev == "logout" {
			break
		}
	}
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Fatalf("stream after logout: %v, want its end", err)
	}
}

func TestSessionsBounded(t *testing.T) {
	now := time.Unix(0, 0)
	s := newSessions(time.Hour, func() time.Time { return now })
	first := s.create("a")
	for range maxSessions {
		now = now.Add(time.Second)
		s.create("a")
	}
	if _, ok := s.get(first); ok {
		t.Fatalf("the oldest session survived %d newer ones", maxSessions)
	}
	if len(s.m) != maxSessions {
		t.Fatalf("%d sessions held, want %d", len(s.m), maxSessions)
	}
	tok := s.create("b")
	now = now.Add(time.Hour)
	if _, ok := s.get(tok); ok {
		t.Fatalf("session outlived its TTL")
	}
}
