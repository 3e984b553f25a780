package site

import (
	"context"
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// link makes a real link from one site to another: a token issued by to,
// redeemed by from over TLS, the link up.
func linkSites(t *testing.T, from, to *testSite) {
	t.Helper()
	tok, err := to.IssueToken(time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := from.CreateLink(ctx, "", 1, tok); err != nil {
		t.Fatal(err)
	}
}

// record is the record of site held in s's table.
func (s *testSite) record(site siteid.ID) (routing.Record, bool) {
	for _, r := range s.Table().Records() {
		if r.Site == site {
			return r, true
		}
	}
	return routing.Record{}, false
}

func connectorsOf(r routing.Record) []string {
	var out []string
	for _, c := range r.Connectors {
		out = append(out, c.Address)
	}
	slices.Sort(out)
	return out
}

func (s *testSite) rejected(reason string) float64 {
	return testutil.ToFloat64(s.metrics.RecordsRejected.WithLabelValues(reason))
}

// rogueSetup starts a victim with two neighbours, an honest one and a
// rogue one, each linked to it with a real token over TLS.
func rogueSetup(t *testing.T) (victim, honest, rogue *testSite) {
	victim, honest, rogue = startSite(t, "victim"), startSite(t, "honest"), startSite(t, "rogue")
	linkSites(t, honest, victim)
	linkSites(t, rogue, victim)
	return victim, honest, rogue
}

// sendRaw sends a site record on s's live session to peer, bypassing s's
// router: s plays a rogue neighbour on a real, authenticated link.
func (s *testSite) sendRaw(peer siteid.ID, rec routing.Record) {
	s.t.Helper()
	pc := s.bestPeer(peer)
	if pc == nil {
		s.t.Fatal("no session to the victim")
	}
	b, err := rec.MarshalBinary() // structure only: it does not check signatures
	if err != nil {
		s.t.Fatal(err)
	}
	if err := pc.sess.SendControl(append([]byte{ctlRecord}, b...)); err != nil {
		s.t.Fatal(err)
	}
}

// A linked site can no longer forge, alter, withdraw or roll back another
// site's record: rogue is linked to victim over a real TLS link made with a
// real token, as is honest; rogue sends the victim forged, altered and
// replayed records of honest. The victim's view of honest stays what
// honest signed, and every refusal is counted and logged with the link.
func TestRoguePeerCannotForgeAlterOrReplayRecords(t *testing.T) {
	victim, honest, rogue := rogueSetup(t)
	if code, _ := honest.putConnector("orders"); code >= 300 {
		t.Fatalf("connector: %d", code)
	}
	// The rogue holds honest's real record (flooding gave it one).
	var old routing.Record
	waitFor(t, "the rogue to hold honest's record with orders", func() bool {
		r, ok := rogue.record(honest.ID())
		old = r
		return ok && slices.Equal(connectorsOf(r), []string{"orders"})
	})
	if code, _ := honest.putConnector("payments"); code >= 300 {
		t.Fatalf("connector: %d", code)
	}
	want := []string{"orders", "payments"}
	var current routing.Record
	waitFor(t, "the victim to see honest's payments", func() bool {
		r, ok := victim.record(honest.ID())
		current = r
		return ok && slices.Equal(connectorsOf(r), want)
	})
	waitFor(t, "the rogue to see honest's payments", func() bool {
		r, ok := rogue.record(honest.ID())
		return ok && slices.Equal(connectorsOf(r), want)
	})

	rogueKey := rogue.key.Private()
	forgedBy := func(key ed25519.PrivateKey, change func(r *routing.Record)) routing.Record {
		r := current
		r.Seq = current.Seq + 1000
		change(&r)
		site := r.Site
		r.Sign(key)
		r.Site = site
		return r
	}
	altered := func(change func(r *routing.Record)) routing.Record {
		r := current
		r.Seq = current.Seq + 1000
		change(&r)
		return r // signature kept: it no longer covers the record
	}
	withdrawal := forgedBy(rogueKey, func(r *routing.Record) { r.Connectors, r.Links = nil, nil })
	for _, tc := range []struct {
		name   string
		rec    routing.Record
		reason string
	}{
		{"withdrawal signed by the rogue's key", withdrawal, rejectKeyMismatch},
		{"honest's key, the rogue's signature", func() routing.Record {
			r := forgedBy(rogueKey, func(r *routing.Record) { r.Connectors = nil })
			r.Key, r.Cert = current.Key, current.Cert
			return r
		}(), rejectBadSignature},
		{"the rogue's operational key and certificate", func() routing.Record {
			r := current
			r.Seq, r.Connectors = current.Seq+1000, nil
			r.SignOp(rogue.op.Load())
			return r
		}(), rejectBadCert},
		{"connector added", altered(func(r *routing.Record) {
			r.Connectors = append(slices.Clone(r.Connectors), routing.Connector{Address: "evil", Protocol: "tcp"})
		}), rejectBadSignature},
		{"link cost changed", altered(func(r *routing.Record) {
			r.Links = slices.Clone(r.Links)
			r.Links[0].Cost = 1 << 20
		}), rejectBadSignature},
		{"interest added", altered(func(r *routing.Record) { r.Interests = []string{"secrets.#"} }), rejectBadSignature},
		{"unsigned", func() routing.Record {
			r := current
			r.Seq += 1000
			r.Key, r.Sig = [32]byte{}, [64]byte{}
			return r
		}(), rejectUnsigned},
		{"replayed older record", old, rejectStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := victim.rejected(tc.reason)
			rogue.sendRaw(victim.ID(), tc.rec)
			waitFor(t, "the victim to count the refusal", func() bool { return victim.rejected(tc.reason) > before })
			r, ok := victim.record(honest.ID())
			if !ok || r.Verify(time.Now()) != nil || !slices.Equal(connectorsOf(r), want) || r.Seq < current.Seq || r.Seq == tc.rec.Seq {
				t.Fatalf("victim's record of honest changed: ok %v seq %d (was %d) connectors %v verify %v", ok, r.Seq, current.Seq, connectorsOf(r), r.Verify(time.Now()))
			}
			if len(victim.Table().Candidates("evil")) != 0 {
				t.Fatal("the victim routes to a forged connector")
			}
			if _, ok := victim.Table().Route(honest.ID()); !ok {
				t.Fatal("the victim lost its route to honest")
			}
		})
	}
	// Each forgery is logged once, naming the link it came on.
	logs := victim.log.String()
	if n := strings.Count(logs, "site record refused"); n < 5 {
		t.Errorf("%d refusals logged, want one per forged or altered record:\n%s", n, logs)
	}
	if !strings.Contains(logs, "link=rogue") {
		t.Errorf("refusals do not name the rogue's link:\n%s", logs)
	}
	// The same forgery again is counted, not verified or logged again.
	before := victim.rejected(rejectKeyMismatch)
	rogue.sendRaw(victim.ID(), withdrawal)
	waitFor(t, "the repeated forgery to be counted", func() bool { return victim.rejected(rejectKeyMismatch) > before })
	if n := strings.Count(victim.log.String(), "site record refused"); n != strings.Count(logs, "site record refused") {
		t.Errorf("a repeated forgery was logged again")
	}
}

// A token holder cannot redeem in another site's name: the redemption must
// prove the claimed site's identity key, so no certificate names a site
// that did not ask for it, and the token is not spent.
func TestRedeemInAnotherSitesNameRefused(t *testing.T) {
	victim, honest, rogue := rogueSetup(t)
	tok, err := victim.IssueToken(time.Minute, 1)
	must(t, err)
	pool, err := poolFromPEM(tok.Spec.CA)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialAny(ctx, tok.Spec.Addresses, identity.ClientTLSConfig(pool, victim.ID(), nil, identity.ALPNRedeem))
	must(t, err)
	defer c.Close()
	_, csr, err := identity.NewKey()
	must(t, err)
	req := &identity.RedeemRequest{TokenID: tok.Spec.ID, Secret: tok.Spec.Secret, SiteName: "honest", CSR: csr}
	binding, err := identity.RedeemBinding(c.ConnectionState())
	must(t, err)
	req.Prove(rogue.key, binding)
	req.SiteID = honest.ID() // the claim the proof does not back
	must(t, identity.WriteMessage(c, req))
	resp, err := identity.ReadResponse(c)
	must(t, err)
	if resp.Code != identity.CodeInvalid || len(resp.CertPEM) != 0 || !strings.Contains(resp.Message, "did not prove") {
		t.Fatalf("redemption in honest's name: %+v", resp)
	}
	// The token was not spent: a real redemption still works.
	other := startSite(t, "other")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := other.CreateLink(ctx2, "", 1, tok); err != nil {
		t.Fatalf("the token was spent by a refused redemption: %v", err)
	}
}
