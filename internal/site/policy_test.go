package site

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/policy"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/siteid"
)

// testOrg is an organisation key.
type testOrg struct{ key ed25519.PrivateKey }

func newTestOrg(t *testing.T) testOrg {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return testOrg{k}
}

func (o testOrg) id() string { return policy.OrgIDOf(o.key.Public().(ed25519.PublicKey)).String() }

// join certifies s as a member of o and installs the certificate.
func (s *testSite) join(o testOrg) {
	s.t.Helper()
	c := policy.Certify(o.key, s.id)
	var v apitype.OrganisationView
	if code, errCode := s.api("PUT", "/v1/organisation", apitype.OrganisationRequest{Certificate: string(c.PEM())}, &v); code != 200 || v.Organisation != o.id() {
		s.t.Fatalf("install certificate at %s: %d %s %+v", s.name, code, errCode, v)
	}
}

func (s *testSite) rule(kind, address string, orgs ...string) {
	s.t.Helper()
	spec := resource.AddressRuleSpec{Address: address, Organisations: orgs}
	var obj any = &resource.AddressExport{Spec: spec}
	if kind == "imports" {
		obj = &resource.AddressImport{Spec: spec}
	}
	name := strings.NewReplacer(".", "-", ">", "all", "*", "one").Replace(address)
	if code, errCode := s.api("PUT", "/v1/"+kind+"/"+name, obj, nil); code != 200 {
		s.t.Fatalf("%s %s at %s: %d %s", kind, address, s.name, code, errCode)
	}
}

// open opens a TCP service stream for address from s straight to dst,
// past s's own route table, as a site that ignored the policy would.
func (s *testSite) open(address string, dst siteid.ID) error {
	return s.openAs(s.id, address, dst)
}

// openAs opens an unsealed TCP service stream for address from s along
// path, in the name of origin: as a site that ignores the policy, or, for
// another origin, forges streams, would.
func (s *testSite) openAs(origin siteid.ID, address string, path ...siteid.ID) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.OpenStream(ctx, forward.NewHeader(forward.KindTCP, address, origin, path))
	if err == nil {
		st.Close()
	}
	return err
}

// policyOf is the policy in the record of site that s holds.
func (s *testSite) policyOf(site siteid.ID) policy.Policy {
	var p policy.Policy
	if r, ok := s.record(site); ok && len(r.Policy) > 0 {
		p.UnmarshalBinary(r.Policy)
	}
	return p
}

func candidateSites(s *testSite, address string) []siteid.ID {
	var out []siteid.ID
	for _, c := range s.Table().Candidates(address) {
		out = append(out, c.Site)
	}
	return out
}

// TestPolicyAcrossOrganisations: over a real link, a site of another
// organisation neither sees a connector that was not exported to it and
// imported by it, nor reaches it by opening a stream past its table: the
// egress refuses it with code RejectPolicy, logs why and counts it. Once
// the address is exported and imported, both agree and the stream passes
// the policy. Unorganised sites, as before organisations, share everything.
func TestPolicyAcrossOrganisations(t *testing.T) {
	x, y := newTestOrg(t), newTestOrg(t)
	a, b := startSite(t, "a"), startSite(t, "b")
	linkSites(t, a, b)
	b.putConnector("orders")
	waitFor(t, "a to see b's connector, both unorganised", func() bool { return slices.Contains(candidateSites(a, "orders"), b.id) })

	b.join(x)
	waitFor(t, "a to drop b's connector once b is in an organisation", func() bool { return !slices.Contains(candidateSites(a, "orders"), b.id) })
	if got := testutil.ToFloat64(a.pol.hidden); got != 1 {
		t.Errorf("weft_policy_hidden_connectors at a: %v, want 1", got)
	}
	var rej *link.RejectError
	if err := a.open("orders", b.id); !errors.As(err, &rej) || rej.Code != RejectPolicy || !strings.Contains(rej.Message, "not-exported") {
		t.Fatalf("stream from an unorganised site: %v, want a policy reject", err)
	}
	a.join(y)
	b.rule("exports", "orders", y.id())
	waitFor(t, "b's export to reach a", func() bool { return len(a.policyOf(b.id).Exports) == 1 })
	// b judges a by the record of a it holds: wait for a's certificate.
	waitFor(t, "a's certificate to reach b", func() bool { return b.policyOf(a.id).Cert != nil })
	if slices.Contains(candidateSites(a, "orders"), b.id) {
		t.Errorf("a uses b's connector without importing it")
	}
	if err := a.open("orders", b.id); !errors.As(err, &rej) || rej.Code != RejectPolicy || !strings.Contains(rej.Message, "not-imported") {
		t.Fatalf("stream from a site that did not import: %v, want a policy reject", err)
	}
	if got := testutil.ToFloat64(b.pol.refused.WithLabelValues(policy.NotExported)) + testutil.ToFloat64(b.pol.refused.WithLabelValues(policy.NotImported)); got != 2 {
		t.Errorf("refusals counted: %v, want 2", got)
	}
	if l := b.log.String(); !strings.Contains(l, "stream refused by the address policy") || !strings.Contains(l, `originAuthenticatedBy=link`) || !strings.Contains(l, "reason=not-imported") {
		t.Errorf("b's log does not say why it refused:\n%s", l)
	}

	a.rule("imports", "orders", x.id())
	waitFor(t, "a to use b's connector once exported and imported", func() bool { return slices.Contains(candidateSites(a, "orders"), b.id) })
	waitFor(t, "a's import to reach b", func() bool { return len(b.policyOf(a.id).Imports) == 1 })
	// Admitted: the egress dials its target, which refuses (port 9).
	if err := a.open("orders", b.id); !errors.As(err, &rej) || rej.Code == RejectPolicy {
		t.Errorf("stream of an admitted site: %v, want past the policy", err)
	}
	if slices.Contains(candidateSites(a, "payments"), b.id) {
		t.Errorf("an address not exported")
	}
}

// TestPolicyEventInterests: a site sends events only to the sites of
// another organisation whose interests its exports and their imports
// cover; it does not even see the others' interests.
func TestPolicyEventInterests(t *testing.T) {
	x, y := newTestOrg(t), newTestOrg(t)
	a, b := startSite(t, "a"), startSite(t, "b")
	linkSites(t, a, b)
	sub := resource.Subscription{Spec: resource.SubscriptionSpec{Topic: "orders.*", Sink: "http://127.0.0.1:9/"}}
	if code, errCode := a.api("PUT", "/v1/subscriptions/audit", sub, nil); code != 200 {
		t.Fatalf("subscription: %d %s", code, errCode)
	}
	interestAt := func() bool {
		r, ok := b.record(a.id)
		return ok && slices.Contains(r.Interests, "t:orders.*")
	}
	waitFor(t, "b to see a's interest, both unorganised", interestAt)
	a.join(y)
	b.join(x)
	waitFor(t, "b to drop a's interest across organisations", func() bool {
		r, ok := b.record(a.id)
		return ok && len(r.Policy) > 0 && !interestAt()
	})
	b.rule("exports", "orders.>", y.id())
	a.rule("imports", "orders.*", x.id())
	waitFor(t, "b to see a's interest once covered by its export and a's import", interestAt)
}

// FuzzOrganisationRequest feeds PUT /v1/organisation bodies to the decoder
// and the certificate check: only a certificate of this site's organisation
// is accepted.
func FuzzOrganisationRequest(f *testing.F) {
	site := siteid.ID{1}
	_, k, _ := ed25519.GenerateKey(nil)
	c := policy.Certify(k, site)
	good, _ := json.Marshal(apitype.OrganisationRequest{Certificate: string(c.PEM())})
	f.Add(good)
	f.Add([]byte(`{"certificate":"-----BEGIN WEFT ORGANISATION CERTIFICATE-----\nAAAA\n-----END WEFT ORGANISATION CERTIFICATE-----\n"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req apitype.OrganisationRequest
		if decodeBody(httptest.NewRequest("PUT", "/v1/organisation", bytes.NewReader(body)), &req) != nil {
			return
		}
		c, err := policy.ParseCertPEM([]byte(req.Certificate))
		if err != nil || c.Verify(site) != nil {
			return
		}
		if c.Site != site || c.Org().IsZero() {
			t.Fatalf("accepted %+v", c)
		}
	})
}

// TestApplyPolicy: exports and imports apply from YAML like every kind,
// unchanged the second time; a bad organisation ID fails its document.
func TestApplyPolicy(t *testing.T) {
	s := startSite(t, "a")
	doc := `apiVersion: weft.dev/v1alpha1
kind: AddressExport
metadata: {name: inventory}
spec: {address: inventory, organisations: [7d793037a0760186574b0282f2f435e7]}
---
apiVersion: weft.dev/v1alpha1
kind: AddressImport
metadata: {name: orders}
spec: {address: 'orders.>', organisations: [7d793037a0760186574b0282f2f435e7]}
`
	for _, want := range []string{apitype.ApplyCreated, apitype.ApplyUnchanged} {
		var res apitype.ApplyResponse
		if code, errCode := s.api("POST", "/v1/apply", doc, &res); code != 200 || res.Failed != 0 || len(res.Items) != 2 ||
			res.Items[0].Result != want || res.Items[1].Result != want || res.Items[0].Kind != resource.KindAddressExport {
			t.Fatalf("apply: %d %s %+v, want %s", code, errCode, res, want)
		}
	}
	if p := s.policyRecord(); p == nil {
		t.Errorf("no policy in the record after apply")
	}
	bad := strings.Replace(doc, "7d793037a0760186574b0282f2f435e7]}\n---", "00000000000000000000000000000000]}\n---", 1)
	if code, errCode := s.api("POST", "/v1/apply", bad, nil); code != 400 || errCode != apitype.CodeInvalid {
		t.Errorf("zero organisation: %d %s", code, errCode)
	}
}

// sendEventFrames opens an event stream of tag from s to its neighbour dst,
// past s's broker and its table, as a site that ignored the policy would,
// and writes frames; on a log stream it waits for the acknowledgement of
// the last mark.
func (s *testSite) sendEventFrames(dst siteid.ID, tag string, frames ...events.Frame) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.OpenStream(ctx, forward.NewHeader(forward.KindEvent, tag, s.id, []siteid.ID{dst}))
	if err != nil {
		s.t.Fatal(err)
	}
	defer st.Close()
	var b []byte
	for i := range frames {
		b = events.AppendFrame(b, &frames[i])
	}
	if _, err := st.Write(b); err != nil {
		s.t.Fatal(err)
	}
	if tag != broker.TagLog {
		return
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if f, _, err := events.ReadFrame(st, nil); err != nil || f.Type != events.FrameAck {
		s.t.Fatalf("log stream: %+v %v, want an acknowledgement", f, err)
	}
}

// subscribeSSE subscribes to a topic pattern at s's event API; the lines of
// data arrive on the channel until the test ends.
func (s *testSite) subscribeSSE(pattern string) <-chan string {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.EventsAddr().String()+"/v1/topics/"+pattern+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		cancel()
		s.t.Fatalf("subscribe %s: %v %v", pattern, resp, err)
	}
	out := make(chan string, 16)
	done := make(chan struct{})
	s.t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	go func() {
		defer close(done)
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				out <- d
			}
		}
	}()
	return out
}

// TestPolicyEventsRefusedAtReceiver: a site that receives events over a
// link checks the publishing site against the address policy itself: the
// events of a site of another organisation that sends past the policy, on
// a tree (volatile) and on a log (persisted) stream, reach no subscriber
// and are counted and logged; once the subject is exported and imported,
// the same frames are delivered.
func TestPolicyEventsRefusedAtReceiver(t *testing.T) {
	x, y := newTestOrg(t), newTestOrg(t)
	a, b := startSite(t, "a"), startSite(t, "b")
	linkSites(t, a, b)
	a.join(y)
	b.join(x)
	waitFor(t, "b to know a's organisation", func() bool { return !(*b.pol.members.Load())[a.id].Org.IsZero() })
	events0 := b.subscribeSSE("orders.*")
	frames := func(id string) []events.Frame {
		ev := []byte(`{"specversion":"1.0","id":"` + id + `","source":"/a","type":"t"}`)
		return []events.Frame{
			{Type: events.FrameEvent, Kind: events.Topic, Subject: "orders.new", Origin: a.id, Paths: [][]siteid.ID{{b.id}}, Payload: ev},
		}
	}
	logFrames := func(id string) []events.Frame {
		ev := []byte(`{"specversion":"1.0","id":"` + id + `","source":"/a","type":"t"}`)
		return []events.Frame{
			{Type: events.FrameData, Kind: events.Topic, Subject: "orders.new", Origin: a.id, Sites: []siteid.ID{b.id}, Payload: ev},
			{Type: events.FrameMark, Mark: 1},
		}
	}
	refused := func() float64 { return testutil.ToFloat64(b.pol.refusedEvents.WithLabelValues(policy.NotExported)) }
	a.sendEventFrames(b.id, broker.TagTree, frames("v1")...)
	waitFor(t, "b to refuse the volatile event", func() bool { return refused() == 1 })
	a.sendEventFrames(b.id, broker.TagLog, logFrames("p1")...)
	if got := refused(); got != 2 {
		t.Errorf("refused events at b: %v, want 2", got)
	}
	if l := b.log.String(); !strings.Contains(l, "event refused by the address policy") || !strings.Contains(l, "originAuthenticatedBy=link") ||
		!strings.Contains(l, "subject=orders.new") {
		t.Errorf("b's log does not say why it refused:\n%s", l)
	}

	a.rule("exports", "orders.>", x.id())
	b.rule("imports", "orders.>", y.id())
	waitFor(t, "a's export and b's import in force at b", func() bool {
		return len(b.policyOf(a.id).Exports) == 1 && len((*b.pol.members.Load())[b.id].Imports) == 1
	})
	a.sendEventFrames(b.id, broker.TagTree, frames("v2")...)
	a.sendEventFrames(b.id, broker.TagLog, logFrames("p2")...)
	// The refused events were handled before these were sent: had one
	// been delivered, it would be among the first two.
	var got []string
	for len(got) < 2 {
		select {
		case d := <-events0:
			got = append(got, d)
		case <-time.After(10 * time.Second):
			t.Fatalf("b's subscriber got %q, want the events v2 and p2", got)
		}
	}
	slices.Sort(got)
	if !strings.Contains(got[0], `"id":"p2"`) || !strings.Contains(got[1], `"id":"v2"`) {
		t.Errorf("b's subscriber got %q, want the events v2 and p2", got)
	}
	if got := refused(); got != 2 {
		t.Errorf("refused events at b after export and import: %v, want 2", got)
	}
}
