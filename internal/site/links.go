package site

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/resource"
)

// CreateLink redeems an access token issued by another site, stores the link and
// waits until it is up or ctx ends. It returns the link's name.
func (s *Site) CreateLink(ctx context.Context, name string, cost uint32, tok *resource.AccessToken) (string, error) {
	if err := tok.Default(); err != nil {
		return "", err
	}
	if err := s.linkRoom(tok.Spec.IssuerID); err != nil {
		return "", err
	}
	resp, keyPEM, err := s.redeemToken(ctx, tok)
	if err != nil {
		return "", err
	}
	if cost == 0 {
		cost = 1
	}
	if name == "" {
		name = tok.Spec.IssuerName
	}
	issuer := resp.IssuerID.String()
	var (
		ol       outboundLink
		replaced []string
	)
	err = s.commit(func(st *state) error {
		// Re-linking to the same issuer replaces the old link.
		st.Outbound = slices.DeleteFunc(st.Outbound, func(l outboundLink) bool {
			if l.IssuerID == issuer {
				replaced = append(replaced, l.Name)
				return true
			}
			return false
		})
		ol = outboundLink{Name: st.uniqueLinkName(name), Cost: cost, IssuerID: issuer, IssuerName: resp.IssuerName,
			Addresses: tok.Spec.Addresses, CAPEM: tok.Spec.CA, CertPEM: string(resp.CertPEM), KeyPEM: string(keyPEM)}
		st.Outbound = append(st.Outbound, ol)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%s granted the link, but %w; issue a new token there and try again", resp.IssuerName, err)
	}
	s.mu.Lock()
	var old []*dialer
	for _, n := range replaced {
		if d := s.dialers[n]; d != nil {
			old = append(old, d)
			delete(s.dialers, n)
		}
	}
	s.mu.Unlock()
	for _, d := range old {
		s.stopDialer(d)
	}
	d := s.startDialer(ol)
	select {
	case <-d.up:
		return ol.Name, nil
	case <-d.done:
		_, why := d.status()
		return ol.Name, fmt.Errorf("link %s was refused: %s", ol.Name, why)
	case <-ctx.Done():
		_, why := d.status()
		return ol.Name, fmt.Errorf("link %s was created but is not up yet (%s); it keeps retrying: see `weft link list`", ol.Name, why)
	}
}

// linkRoom says whether the site may hold one more link to issuer.
func (s *Site) linkRoom(issuer string) error {
	st := s.state()
	if len(st.Inbound)+len(st.Outbound) < maxLinks || slices.ContainsFunc(st.Outbound, func(l outboundLink) bool { return l.IssuerID == issuer }) {
		return nil
	}
	s.metrics.LimitRefusals.WithLabelValues("links").Inc()
	return limitError("links", maxLinks, "delete a link first")
}

// ErrNoLink is returned when a link name is unknown.
var ErrNoLink = errors.New("no such link")

// DeleteLink removes a link by name. For a link this site issued, that revokes the
// peer's certificate, so the peer cannot come back without a new token.
func (s *Site) DeleteLink(name string) error {
	found, outbound := false, false
	err := s.commit(func(st *state) error {
		n, nOut := len(st.Outbound)+len(st.Inbound), len(st.Outbound)
		st.Outbound = slices.DeleteFunc(st.Outbound, func(l outboundLink) bool { return l.Name == name })
		st.Inbound = slices.DeleteFunc(st.Inbound, func(l inboundLink) bool { return l.Name == name })
		found, outbound = n != len(st.Outbound)+len(st.Inbound), nOut != len(st.Outbound)
		if !found {
			return fmt.Errorf("%w %q: see `weft link list`", ErrNoLink, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	d := s.dialers[name]
	delete(s.dialers, name)
	var closeSess []*link.Session
	for _, pcs := range s.peers {
		for _, pc := range pcs {
			if pc.linkName == name {
				closeSess = append(closeSess, pc.sess)
			}
		}
	}
	s.mu.Unlock()
	if d != nil {
		d.cancel()
	}
	for _, sess := range closeSess {
		if outbound {
			// The issuer forgets the link too (ctlWithdraw). If the link is
			// down now, the issuer keeps showing it down until it is
			// deleted there as well.
			sess.SendControl([]byte{ctlWithdraw})
		}
		sess.CloseWithError(errors.New("link deleted"))
	}
	if d != nil {
		<-d.done
	}
	return nil
}

// forgetWithdrawn removes the inbound link whose dialing site deleted it
// (ctlWithdraw), as if it had been deleted here: its certificate is refused
// from now on.
func (s *Site) forgetWithdrawn(pc *peerConn) {
	found, err := s.deleteNamed(func(st *state) bool {
		n := len(st.Inbound)
		st.Inbound = slices.DeleteFunc(st.Inbound, func(l inboundLink) bool { return l.Name == pc.linkName && l.PeerID == pc.certPeer.String() })
		return n != len(st.Inbound)
	})
	switch {
	case err != nil:
		s.log.Error("the peer deleted its link, but forgetting it failed; delete it here with `weft link delete`", "link", pc.linkName, "peer", pc.peerName, "err", err)
	case found:
		s.log.Info("link deleted by the peer", "link", pc.linkName, "peer", pc.peerName)
	}
}

// IssueToken makes an access token for another site to link to this one.
func (s *Site) IssueToken(ttl time.Duration, uses int) (*resource.AccessToken, error) {
	var id, secret string
	var expires time.Time
	err := s.commit(func(st *state) (err error) {
		if len(st.Tokens.Tokens()) >= maxTokens {
			s.metrics.LimitRefusals.WithLabelValues("tokens").Inc()
			return limitError("tokens", maxTokens, "revoke tokens or wait until they expire")
		}
		id, secret, expires, err = st.Tokens.Issue(time.Now(), ttl, uses)
		return err
	})
	if err != nil {
		return nil, err
	}
	t := &resource.AccessToken{Spec: resource.AccessTokenSpec{
		ID: id, Secret: secret, Uses: uses, IssuerID: s.id.String(), IssuerName: s.name,
		Addresses: s.opts.Advertise, CA: string(s.ca.CertPEM()),
	}}
	t.Spec.Expires.Time = expires
	t.Name = s.name + "-" + id[:8]
	return t, t.Default()
}

// Links lists outbound and inbound links with their state.
func (s *Site) Links() []resource.Link {
	st := s.state()
	s.mu.Lock()
	live := map[string]*peerConn{}
	for _, pcs := range s.peers {
		for _, pc := range pcs {
			live[pc.linkName] = pc
		}
	}
	dialers := make(map[string]*dialer, len(s.dialers))
	for n, d := range s.dialers {
		dialers[n] = d
	}
	s.mu.Unlock()
	view := func(name, peer, peerName string, cost uint32, inbound bool) resource.Link {
		l := resource.Link{Spec: resource.LinkSpec{Cost: cost}}
		l.APIVersion, l.Kind, l.Name = resource.APIVersion, resource.KindLink, name
		l.Status = resource.LinkStatus{Peer: peer, PeerName: peerName, State: "down", Inbound: inbound}
		if pc := live[name]; pc != nil {
			l.Status.State = "up"
			l.Status.RTT = pc.sess.RTT().Round(time.Microsecond).String()
			pc.mu.Lock()
			l.Spec.Cost = pc.cost
			pc.mu.Unlock()
		}
		return l
	}
	var out []resource.Link
	for _, ol := range st.Outbound {
		l := view(ol.Name, ol.IssuerID, ol.IssuerName, ol.Cost, false)
		switch d := dialers[ol.Name]; {
		case l.Status.State == "up":
		case ol.Refused != "":
			l.Status.State, l.Status.Error = linkRevoked, ol.Refused
		case d != nil:
			l.Status.State, l.Status.Error = d.status()
		}
		out = append(out, l)
	}
	for _, il := range st.Inbound {
		out = append(out, view(il.Name, il.PeerID, il.PeerName, 0, true))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
