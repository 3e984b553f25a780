package site

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/policy"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// sealCounts are a site's weft_seal_streams_total: opened sealed and
// direct, served sealed and direct.
func (s *testSite) sealCounts() [4]float64 {
	c := s.sealCount
	return [4]float64{testutil.ToFloat64(c.openedSealed), testutil.ToFloat64(c.openedDirect),
		testutil.ToFloat64(c.servedSealed), testutil.ToFloat64(c.servedDirect)}
}

func (s *testSite) sealRefusals(reason string) float64 {
	s.t.Helper()
	mfs, err := s.metrics.Registry.Gather()
	must(s.t, err)
	for _, mf := range mfs {
		if mf.GetName() != "weft_seal_refusals_total" {
			continue
		}
		for _, m := range mf.Metric {
			if m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// startLine starts the sites a, b and c, linked in the line a - b - c.
func startLine(t *testing.T) (a, b, c *testSite) {
	a, b, c = startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	linkSites(t, a, b)
	linkSites(t, b, c)
	return a, b, c
}

// On a - b - c with the echo connector at c, a's stream through b is
// sealed end to end and b's, whose path is c alone, is direct: unsealed,
// on the link whose TLS already joins b and c. The transit b opens and
// serves nothing of a's.
func TestDirectStreamsAreUnsealed(t *testing.T) {
	a, b, c := startLine(t)
	conn, r := openStream(t, a, c)
	echo(t, conn, r, "through b")
	if got, want := a.sealCounts(), [4]float64{1, 0, 0, 0}; got != want {
		t.Errorf("a's streams (opened sealed, direct, served sealed, direct): %v, want %v", got, want)
	}
	if got, want := c.sealCounts(), [4]float64{0, 0, 1, 0}; got != want {
		t.Errorf("c's streams: %v, want %v", got, want)
	}
	conn, r = dialListener(t, b)
	echo(t, conn, r, "direct")
	if got, want := b.sealCounts(), [4]float64{0, 1, 0, 0}; got != want {
		t.Errorf("b's streams: %v, want %v", got, want)
	}
	if got, want := c.sealCounts(), [4]float64{0, 0, 1, 1}; got != want {
		t.Errorf("c's streams after b's: %v, want %v", got, want)
	}
}

// An unsealed stream is served only from its origin's own link: one that
// the transit b makes up in a's name, and one a sends unsealed through b,
// are refused at c with RejectSeal saying why, counted and logged.
func TestUnsealedStreamThroughTransitRefused(t *testing.T) {
	a, b, c := startLine(t)
	openStream(t, a, c)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"forged by the transit", b.openAs(a.id, "echo", c.id)},
		{"unsealed through the transit", a.openAs(a.id, "echo", b.id, c.id)},
	} {
		var rej *link.RejectError
		if !errors.As(tc.err, &rej) || rej.Code != forward.RejectSeal ||
			!strings.Contains(rej.Message, "arrived unsealed from site "+b.id.String()) {
			t.Errorf("%s: %v, want RejectSeal naming b", tc.name, tc.err)
		}
	}
	if got := c.sealRefusals("unsealed-not-peer"); got != 2 {
		t.Errorf("weft_seal_refusals_total{reason=unsealed-not-peer} at c: %v, want 2", got)
	}
	if l := c.log.String(); !strings.Contains(l, "service stream refused by the seal check") || !strings.Contains(l, "reason=unsealed-not-peer") {
		t.Errorf("c's log does not say why it refused:\n%s", l)
	}
	if got := c.sealCounts(); got[3] != 0 {
		t.Errorf("c served %v direct streams", got[3])
	}
}

// The address policy judges a direct stream by its origin, which the link
// authenticates: the unorganised b reaching c directly is refused by the
// policy (and c logs the origin as proven by the link); b naming a, which
// the policy admits, is refused by the seal; a's own stream through b,
// sealed, passes both.
func TestPolicyDirectOrigin(t *testing.T) {
	x, y := newTestOrg(t), newTestOrg(t)
	a, b, c := startLine(t)
	c.putConnector("orders")
	c.join(x)
	a.join(y)
	c.rule("exports", "orders", y.id())
	a.rule("imports", "orders", x.id())
	waitFor(t, "a's certificate and import to reach c", func() bool {
		p := c.policyOf(a.id)
		return p.Cert != nil && len(p.Imports) == 1
	})
	waitFor(t, "a to use c's connector", func() bool { return len(candidateSites(a, "orders")) == 1 })

	var rej *link.RejectError
	if err := b.openAs(b.id, "orders", c.id); !errors.As(err, &rej) || rej.Code != RejectPolicy || !strings.Contains(rej.Message, policy.NotExported) {
		t.Fatalf("b's own direct stream: %v, want a policy reject", err)
	}
	if l := c.log.String(); !strings.Contains(l, "stream refused by the address policy") || !strings.Contains(l, "originAuthenticatedBy=link") {
		t.Errorf("c's log does not say the link proved the origin:\n%s", l)
	}
	if err := b.openAs(a.id, "orders", c.id); !errors.As(err, &rej) || rej.Code != forward.RejectSeal {
		t.Fatalf("b's direct stream in a's name: %v, want RejectSeal", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Admitted and authenticated: c dials its target, which refuses (port 9).
	_, err := serviceNet{a.Site}.OpenStream(ctx, forward.NewHeader(forward.KindTCP, "orders", a.id, []siteid.ID{b.id, c.id}))
	if !errors.As(err, &rej) || rej.Code != forward.RejectRefused {
		t.Fatalf("a's sealed stream: %v, want past the policy and the seal", err)
	}
}

// Mixed versions. A site built before direct streams sets no feature in
// its record, and takes only sealed streams: as a's table holds such a
// record of b (b's own, signed by its key, as an older b would make it),
// a seals its streams to b though the path is b alone; and b, as any
// site, still serves a sealed stream on a direct link, as an older a
// sends it.
func TestDirectStreamsNeedThePeersFeature(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	linkSites(t, a, b)
	conn, r := openStream(t, a, b)
	echo(t, conn, r, "direct")
	if got, want := a.sealCounts(), [4]float64{0, 1, 0, 0}; got != want {
		t.Fatalf("a's streams (opened sealed, direct, served sealed, direct): %v, want %v", got, want)
	}

	old, ok := a.record(b.id)
	if !ok || old.Features&routing.FeatureDirectStreams == 0 {
		t.Fatalf("b's record at a does not set the direct-streams feature: %+v", old)
	}
	old.Features = 0
	old.Seq += 1 << 30 // above b's own later records: a keeps this one
	old.SignOp(b.op.Load())
	b.sendRaw(a.id, old)
	waitFor(t, "a to hold b's record without the feature", func() bool {
		rec, ok := a.record(b.id)
		return ok && rec.Features == 0 && len(rec.Connectors) == 1
	})
	conn, r = dialListener(t, a)
	echo(t, conn, r, "sealed to an older b")
	if got, want := a.sealCounts(), [4]float64{1, 1, 0, 0}; got != want {
		t.Errorf("a's streams: %v, want %v", got, want)
	}

	if err := openSealed(a, b, b.sealKeyNow().Public); err != nil {
		t.Fatalf("a stream sealed on a direct link, as an older a sends it: %v", err)
	}
	if got, want := b.sealCounts(), [4]float64{0, 0, 2, 1}; got != want {
		t.Errorf("b's streams: %v, want %v", got, want)
	}
}
