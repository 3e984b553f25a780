package site

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/siteid"
)

// eventRequest sends a publish (POST) or opens a subscription (GET) at the
// site's event API over TCP with the bearer credential cred, and returns
// the status and the WWW-Authenticate header.
func (s *testSite) eventRequest(method, path, cred string) (int, string) {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.EventsAddr().String())
	req, err := http.NewRequest(method, "http://127.0.0.1:"+port+path, strings.NewReader("x"))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/t", "ce-type": "t"} {
		req.Header.Set(k, v)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if method == "GET" && resp.StatusCode == 200 {
		// The subscription is served: its first line says so; closing
		// the body ends it.
		if line, _ := bufio.NewReader(resp.Body).ReadString('\n'); line != ": subscribed\n" {
			s.t.Errorf("GET %s: first line %q", path, line)
		}
	}
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func (s *testSite) createCredential(req apitype.EventCredentialRequest) apitype.EventCredentialCreated {
	s.t.Helper()
	var c apitype.EventCredentialCreated
	if code, errCode := s.api("POST", "/v1/event-credentials", req, &c); code != 200 {
		s.t.Fatalf("create credential %s: %d %s", req.Name, code, errCode)
	}
	return c
}

// TestEventCredentials: a site whose event API listens beyond loopback
// (auto) answers a publish or subscription without a credential with 401
// and a Bearer challenge, one outside the credential's patterns with 403,
// and serves one inside them; a deleted or expired credential is a 401
// again. The secret is shown once and the state keeps only its hash.
func TestEventCredentials(t *testing.T) {
	s := startSiteWith(t, Options{Name: "a", DataDir: t.TempDir(), EventsAddr: "0.0.0.0:0"})
	orders := s.createCredential(apitype.EventCredentialRequest{Name: "orders", Publish: []string{"orders.>"}, Subscribe: []string{"orders.*", "jobs"}})
	if !strings.HasPrefix(orders.Secret, credentialPrefix) || len(orders.Secret) < len(credentialPrefix)+43 || orders.State != apitype.CredentialActive {
		t.Fatalf("created %+v", orders)
	}
	for _, tc := range []struct {
		method, path, cred string
		status             int
		challenge          string
	}{
		{"POST", "/v1/topics/orders.created", "", 401, `Bearer realm="weft-events"`},
		{"POST", "/v1/topics/orders.created", "weftev_wrong", 401, `Bearer realm="weft-events"`},
		{"POST", "/v1/topics/payments.made", orders.Secret, 403, `Bearer realm="weft-events", error="insufficient_scope"`},
		{"POST", "/v1/topics/orders.created", orders.Secret, 202, ""},
		{"GET", "/v1/topics/orders.*/events", "", 401, `Bearer realm="weft-events"`},
		{"GET", "/v1/topics/orders.>/events", orders.Secret, 403, `Bearer realm="weft-events", error="insufficient_scope"`},
		{"GET", "/v1/topics/orders.*/events", orders.Secret, 200, ""},
		{"GET", "/v1/queues/jobs/events", orders.Secret, 200, ""},
	} {
		if got, ch := s.eventRequest(tc.method, tc.path, tc.cred); got != tc.status || ch != tc.challenge {
			t.Errorf("%s %s with %q: %d %q, want %d %q", tc.method, tc.path, tc.cred, got, ch, tc.status, tc.challenge)
		}
	}
	for _, c := range s.state().EventCredentials {
		if strings.Contains(fmt.Sprint(c), orders.Secret) || c.Hash != hashSecret(orders.Secret) {
			t.Errorf("the state keeps %+v", c)
		}
	}
	var l apitype.List[apitype.EventCredentialView]
	if s.api("GET", "/v1/event-credentials", nil, &l); len(l.Items) != 1 || l.Items[0].Name != "orders" || l.Items[0].Publish[0] != "orders.>" {
		t.Errorf("list: %+v", l.Items)
	}
	if code, errCode := s.api("POST", "/v1/event-credentials", apitype.EventCredentialRequest{Name: "orders", Publish: []string{"x"}}, nil); code != 409 || errCode != apitype.CodeAlreadyExists {
		t.Errorf("second credential of one name: %d %s", code, errCode)
	}
	if code, _ := s.api("DELETE", "/v1/event-credentials/orders", nil, nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, errCode := s.api("DELETE", "/v1/event-credentials/orders", nil, nil); code != 404 || errCode != apitype.CodeNotFound {
		t.Errorf("delete again: %d %s", code, errCode)
	}
	if got, _ := s.eventRequest("POST", "/v1/topics/orders.created", orders.Secret); got != 401 {
		t.Errorf("publish with a deleted credential: %d", got)
	}
	soon := s.createCredential(apitype.EventCredentialRequest{Name: "soon", Publish: []string{">"}, Expires: "1ns"})
	if got, _ := s.eventRequest("POST", "/v1/topics/orders.created", soon.Secret); got != 401 {
		t.Errorf("publish with an expired credential: %d", got)
	}
	if s.api("GET", "/v1/event-credentials", nil, &l); len(l.Items) != 1 || l.Items[0].State != apitype.CredentialExpired {
		t.Errorf("list after expiry: %+v", l.Items)
	}
}

// TestEventAPIOpenOnLoopback: in auto, an event API on loopback takes
// anyone, as the demo needs; with on it requires a credential there too.
func TestEventAPIOpenOnLoopback(t *testing.T) {
	open := startSite(t, "a")
	if got, _ := open.eventRequest("POST", "/v1/topics/orders.created", ""); got != 202 {
		t.Errorf("auto on loopback: %d, want 202", got)
	}
	on := startSiteWith(t, Options{Name: "b", DataDir: t.TempDir(), EventsAuth: EventsAuthOn})
	if got, _ := on.eventRequest("POST", "/v1/topics/orders.created", ""); got != 401 {
		t.Errorf("on, on loopback: %d, want 401", got)
	}
}

func TestEventsAuthRequired(t *testing.T) {
	for _, tc := range []struct {
		mode string
		ip   string
		want bool
		err  bool
	}{
		{"", "127.0.0.1", false, false},
		{"auto", "127.0.0.1", false, false},
		{"auto", "::1", false, false},
		{"auto", "0.0.0.0", true, false},
		{"auto", "::", true, false},
		{"auto", "10.0.0.5", true, false},
		{"on", "127.0.0.1", true, false},
		{"off", "0.0.0.0", false, false},
		{"yes", "127.0.0.1", false, true},
	} {
		got, err := eventsAuthRequired(tc.mode, &net.TCPAddr{IP: net.ParseIP(tc.ip)})
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%q at %s: %v, %v; want %v (error %v)", tc.mode, tc.ip, got, err, tc.want, tc.err)
		}
	}
}

// TestEventCredentialRequests: bad requests are refused with the field at
// fault and the code that says why; the limits answer LimitReached.
func TestEventCredentialRequests(t *testing.T) {
	s := startSite(t, "a")
	many := make([]string, maxCredentialPatterns+1)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	for _, tc := range []struct {
		body any
		code string
	}{
		{`{"name":"x","publish":["a"],"extra":1}`, apitype.CodeInvalid},
		{apitype.EventCredentialRequest{Name: "Bad Name", Publish: []string{"a"}}, apitype.CodeInvalid},
		{apitype.EventCredentialRequest{Name: "x"}, apitype.CodeInvalid},
		{apitype.EventCredentialRequest{Name: "x", Subscribe: []string{"a.>.b"}}, apitype.CodeBadSubject},
		{apitype.EventCredentialRequest{Name: "x", Publish: []string{"a"}, Expires: "-1h"}, apitype.CodeInvalid},
		{apitype.EventCredentialRequest{Name: "x", Publish: many}, apitype.CodeLimitReached},
	} {
		if code, errCode := s.api("POST", "/v1/event-credentials", tc.body, nil); errCode != tc.code || code != apitype.StatusOf(tc.code) {
			t.Errorf("%v: %d %s, want %s", tc.body, code, errCode, tc.code)
		}
	}
	defer func(n int) { maxEventCredentials = n }(maxEventCredentials)
	maxEventCredentials = 2
	s.createCredential(apitype.EventCredentialRequest{Name: "one", Publish: []string{"a"}})
	s.createCredential(apitype.EventCredentialRequest{Name: "two", Publish: []string{"a"}})
	if code, errCode := s.api("POST", "/v1/event-credentials", apitype.EventCredentialRequest{Name: "three", Publish: []string{"a"}}, nil); code != 409 || errCode != apitype.CodeLimitReached {
		t.Errorf("credential over the limit: %d %s", code, errCode)
	}
}

// FuzzEventCredentialRequest feeds POST /v1/event-credentials bodies to
// the decoder and the validation: whatever is accepted has a valid name,
// valid patterns within the limit, and an expiry after its creation.
func FuzzEventCredentialRequest(f *testing.F) {
	f.Add(`{"name":"orders","publish":["orders.>"],"subscribe":["orders.*"],"expires":"720h"}`)
	f.Add(`{"name":"x","subscribe":["a.>.b"]}`)
	f.Add(`{"name":"x","publish":["a"],"expires":"-1s"}`)
	f.Add(`{"name":"","publish":[]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req apitype.EventCredentialRequest
		r := httptest.NewRequest("POST", "/v1/event-credentials", strings.NewReader(body))
		if decodeBody(r, &req) != nil {
			return
		}
		now := time.Now()
		c, err := parseCredentialRequest(req, now)
		if err != nil {
			if toAPIError(err).Code == apitype.CodeInternal {
				t.Fatalf("%s: an error without a code: %v", body, err)
			}
			return
		}
		if c.Name == "" || len(c.Publish)+len(c.Subscribe) == 0 || len(c.Publish) > maxCredentialPatterns || len(c.Subscribe) > maxCredentialPatterns {
			t.Fatalf("accepted %s as %+v", body, c)
		}
		for _, p := range append(c.Publish, c.Subscribe...) {
			if events.ValidatePattern(p) != nil {
				t.Fatalf("accepted pattern %q", p)
			}
		}
		if c.Expires != nil && !c.Expires.After(c.Created) {
			t.Fatalf("accepted %s expiring at %v, created %v", body, c.Expires, c.Created)
		}
	})
}

// BenchmarkAuthorizeEvents is the cost a credential adds to a publish, at
// the limits: 1024 credentials of 64 patterns each, the subject covered by
// the last pattern.
func BenchmarkAuthorizeEvents(b *testing.B) {
	s := &Site{}
	s.evAuth.required = true
	st := &state{}
	for i := range maxEventCredentials {
		c := eventCredential{Name: fmt.Sprintf("c%d", i), Hash: hashSecret(fmt.Sprintf("secret%d", i))}
		for j := range maxCredentialPatterns {
			c.Publish = append(c.Publish, fmt.Sprintf("app%d.orders%d.>", i, j))
		}
		st.EventCredentials = append(st.EventCredentials, c)
	}
	s.st.Store(st)
	subject := fmt.Sprintf("app7.orders%d.eu.created", maxCredentialPatterns-1)
	if err := s.authorizeEvents("secret7", broker.Publish, subject); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.authorizeEvents("secret7", broker.Publish, subject)
	}
}

// openSubscription opens a subscription to pattern at s's event API with the
// bearer credential cred; the body is read past its first line, and the
// subscription's interest is in s's route table (see announcedWait).
func (s *testSite) openSubscription(pattern, cred string) (*bufio.Reader, func()) {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.EventsAddr().String())
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+port+"/v1/topics/"+pattern+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		s.t.Fatalf("subscribe %s: %v %v", pattern, resp, err)
	}
	r := bufio.NewReader(resp.Body)
	if line, _ := r.ReadString('\n'); line != ": subscribed\n" {
		s.t.Fatalf("subscribe %s: first line %q", pattern, line)
	}
	s.announcedWait(events.Interest(events.Topic, pattern))
	return r, func() { resp.Body.Close() }
}

// announcedWait waits until s's own record in its route table holds the
// interest want. ": subscribed" says only that the broker holds it: the
// router goroutine puts it in the table later, and until then a volatile
// event published here has no route to this site and is not delivered.
func (s *testSite) announcedWait(want string) {
	s.t.Helper()
	waitFor(s.t, "the interest "+want+" to be in the route table", func() bool {
		for _, r := range s.Table().Records() {
			if r.Site == s.ID() {
				return slices.Contains(r.Interests, want)
			}
		}
		return false
	})
}

// waitEnd waits until the stream r ends, or fails the test.
func waitEnd(t *testing.T, what string, r *bufio.Reader) {
	t.Helper()
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, r)
		ended <- err
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the subscription still runs", what)
	}
}

// TestSubscriptionEndsWithItsCredential: a live subscription ends when its
// credential is deleted, or expires, while one with another credential
// goes on and still gets events.
func TestSubscriptionEndsWithItsCredential(t *testing.T) {
	s := startSiteWith(t, Options{Name: "a", DataDir: t.TempDir(), EventsAddr: "0.0.0.0:0"})
	gone := s.createCredential(apitype.EventCredentialRequest{Name: "gone", Subscribe: []string{"orders.*"}})
	soon := s.createCredential(apitype.EventCredentialRequest{Name: "soon", Subscribe: []string{"orders.*"}, Expires: "1h"})
	stays := s.createCredential(apitype.EventCredentialRequest{Name: "stays", Subscribe: []string{"orders.*"}, Publish: []string{"orders.*"}})
	rGone, closeGone := s.openSubscription("orders.*", gone.Secret)
	defer closeGone()
	rSoon, closeSoon := s.openSubscription("orders.*", soon.Secret)
	defer closeSoon()
	rStays, closeStays := s.openSubscription("orders.*", stays.Secret)
	defer closeStays()

	if code, _ := s.api("DELETE", "/v1/event-credentials/gone", nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	waitEnd(t, "deleted credential", rGone)
	// Bring the expiry forward, as a credential's time running out would.
	if err := s.commit(func(st *state) error {
		exp := time.Now().Add(100 * time.Millisecond)
		st.EventCredentials[slices.IndexFunc(st.EventCredentials, func(c eventCredential) bool { return c.Name == "soon" })].Expires = &exp
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.recheckCredentials()
	waitEnd(t, "expired credential", rSoon)

	if got, _ := s.eventRequest("POST", "/v1/topics/orders.created", stays.Secret); got != 202 {
		t.Fatalf("publish: %d", got)
	}
	// Bounded: an event that never comes fails the test, not hangs it.
	defer time.AfterFunc(10*time.Second, closeStays).Stop()
	for {
		line, err := rStays.ReadString('\n')
		if err != nil {
			t.Fatalf("the subscription of a credential still valid ended, or had no event in 10 s: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
}

// TestEventCredentialCert: a credential made with Cert is a client
// certificate from the site CA; a real TLS client presenting it on the
// event port gets its permissions (202 inside its patterns, 403 outside),
// on the same port that plain HTTP bearer clients keep using. Without the
// certificate, or naming its credential in a header, or once the
// credential is deleted, the answer is 401; a link certificate from the
// same CA is no credential.
func TestEventCredentialCert(t *testing.T) {
	s := startSiteWith(t, Options{Name: "a", DataDir: t.TempDir(), EventsAddr: "0.0.0.0:0"})
	c := s.createCredential(apitype.EventCredentialRequest{Name: "shop", Publish: []string{"orders.>"}, Cert: true})
	if c.Secret != "" || c.CertPEM == "" || c.KeyPEM == "" || c.CAPEM == "" {
		t.Fatalf("created %+v", c)
	}
	bearer := s.createCredential(apitype.EventCredentialRequest{Name: "bearer", Publish: []string{"orders.>"}})
	leaf, err := identity.ParseCertPEM([]byte(c.CertPEM))
	must(t, err)
	serial := identity.CertSerial(leaf)
	cert, err := tls.X509KeyPair([]byte(c.CertPEM), []byte(c.KeyPEM))
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c.CAPEM))
	_, port, _ := net.SplitHostPort(s.EventsAddr().String())
	publish := func(client *http.Client, scheme, topic, header string) int {
		t.Helper()
		req, err := http.NewRequest("POST", scheme+"://127.0.0.1:"+port+"/v1/topics/"+topic, strings.NewReader("x"))
		must(t, err)
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/t", "ce-type": "t"} {
			req.Header.Set(k, v)
		}
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := client.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	tlsClient := func(certs ...tls.Certificate) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	withCert := tlsClient(cert)
	keyPEM, csr, err := identity.NewKey()
	must(t, err)
	linkPEM, _, err := s.ca.SignClient(time.Now(), csr, siteid.ID{15: 1}, "b", time.Hour)
	must(t, err)
	linkCert, err := tls.X509KeyPair(linkPEM, keyPEM)
	must(t, err)
	plain := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(plain.Transport.(*http.Transport).CloseIdleConnections)
	for _, tc := range []struct {
		name, scheme, topic, header string
		client                      *http.Client
		want                        int
	}{
		{"certificate", "https", "orders.created", "", withCert, 202},
		{"certificate, outside its patterns", "https", "payments.made", "", withCert, 403},
		{"TLS without a certificate", "https", "orders.created", "", tlsClient(), 401},
		{"TLS, bearer", "https", "orders.created", "Bearer " + bearer.Secret, tlsClient(), 202},
		{"plain HTTP, bearer", "http", "orders.created", "Bearer " + bearer.Secret, plain, 202},
		{"certificate credential named in a header", "http", "orders.created", "Bearer " + certCredential(serial), plain, 401},
		{"another certificate of the site CA", "https", "orders.created", "", tlsClient(linkCert), 401},
	} {
		if got := publish(tc.client, tc.scheme, tc.topic, tc.header); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if code, _ := s.api("DELETE", "/v1/event-credentials/shop", nil, nil); code >= 300 {
		t.Fatalf("delete: %d", code)
	}
	if got := publish(tlsClient(cert), "https", "orders.created", ""); got != 401 {
		t.Errorf("deleted certificate credential: %d, want 401", got)
	}
}

// publishTLS publishes one event to topic at s's event port over TLS,
// presenting certs, and returns the status, or the error of a refused
// handshake.
func publishTLS(t *testing.T, s *testSite, certs []tls.Certificate, topic string) (int, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.ca.CertPEM())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}
	defer tr.CloseIdleConnections()
	_, port, _ := net.SplitHostPort(s.EventsAddr().String())
	req, err := http.NewRequest("POST", "https://127.0.0.1:"+port+"/v1/topics/"+topic, strings.NewReader("x"))
	must(t, err)
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/t", "ce-type": "t"} {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// orgClientCert is organisation o's event client certificate for the
// credential name, with the organisation's CA certificate after it unless
// leafOnly.
func orgClientCert(t *testing.T, o testOrg, name string, leafOnly bool) tls.Certificate {
	certPEM, keyPEM, err := identity.SignOrgEventClient(o.key, "org", name, time.Now(), time.Hour)
	must(t, err)
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	if leafOnly {
		c.Certificate = c.Certificate[:1]
	}
	return c
}

// The event port takes client certificates that the site's organisation
// issued, over real TLS: one certificate works at every site of the
// organisation that has a credential of its name, with that credential's
// permissions there; another organisation's certificate, one without the
// organisation's CA certificate, or one for a name the site has no
// credential of, is refused; a site that leaves the organisation refuses
// them all.
func TestEventCredentialOrgCert(t *testing.T) {
	x, y := newTestOrg(t), newTestOrg(t)
	a := startSiteWith(t, Options{Name: "a", DataDir: t.TempDir(), EventsAddr: "0.0.0.0:0"})
	b := startSiteWith(t, Options{Name: "b", DataDir: t.TempDir(), EventsAddr: "0.0.0.0:0"})
	req := apitype.EventCredentialRequest{Name: "shop", Publish: []string{"orders.>"}, Organisation: true}
	if code, errCode := a.api("POST", "/v1/event-credentials", req, nil); code != 400 || errCode != apitype.CodeInvalid {
		t.Errorf("an organisation credential at a site in no organisation: %d %s", code, errCode)
	}
	both := req
	both.Cert = true
	a.join(x)
	b.join(x)
	if code, errCode := a.api("POST", "/v1/event-credentials", both, nil); code != 400 || errCode != apitype.CodeInvalid {
		t.Errorf("a credential of both the site CA and the organisation: %d %s", code, errCode)
	}
	if c := a.createCredential(req); c.Organisation != x.id() || c.Secret != "" || c.CertPEM != "" {
		t.Fatalf("created %+v", c)
	}
	atB := req
	atB.Publish = []string{"payments.>"}
	b.createCredential(atB)

	shop := []tls.Certificate{orgClientCert(t, x, "shop", false)}
	for _, tc := range []struct {
		name  string
		site  *testSite
		certs []tls.Certificate
		topic string
		want  int // 0: the handshake is refused
	}{
		{"the organisation's certificate", a, shop, "orders.created", 202},
		{"outside the credential's patterns", a, shop, "payments.made", 403},
		{"at another site of the organisation, with its credential's patterns", b, shop, "payments.made", 202},
		{"there, outside them", b, shop, "orders.created", 403},
		{"a name with no credential", a, []tls.Certificate{orgClientCert(t, x, "other", false)}, "orders.created", 401},
		{"another organisation's certificate", a, []tls.Certificate{orgClientCert(t, y, "shop", false)}, "orders.created", 0},
		{"without the organisation's CA certificate", a, []tls.Certificate{orgClientCert(t, x, "shop", true)}, "orders.created", 0},
	} {
		got, err := publishTLS(t, tc.site, tc.certs, tc.topic)
		if got != tc.want || (tc.want == 0) != (err != nil) {
			t.Errorf("%s: %d %v, want %d", tc.name, got, err, tc.want)
		}
	}
	if code, _ := a.api("DELETE", "/v1/organisation", nil, nil); code >= 300 {
		t.Fatalf("leave: %d", code)
	}
	if got, err := publishTLS(t, a, shop, "orders.created"); err == nil {
		t.Errorf("after a left the organisation: %d, want a refused handshake", got)
	}
}
