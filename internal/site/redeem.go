package site

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"slices"
	"time"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/siteid"
)

// clientCertTTL is long because a link's certificate is revoked by deleting the
// link at the issuer, not by expiry.
const clientCertTTL = 5 * 365 * 24 * time.Hour

// serveRedeem is the issuer's side of token redemption.
func (s *Site) serveRedeem(c *tls.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	req, err := identity.ReadRequest(c)
	if err != nil {
		s.log.Warn("bad redemption request", "remote", c.RemoteAddr().String(), "err", err)
		identity.WriteMessage(c, &identity.RedeemResponse{Code: identity.ErrorCode(err), Message: err.Error()})
		return
	}
	binding, err := identity.RedeemBinding(c.ConnectionState())
	if err == nil {
		var signer ed25519.PublicKey
		if signer, err = req.CheckProof(binding, time.Now()); err == nil && s.keyRevoked(signer) {
			err = fmt.Errorf("%w: site %s proved itself with an operational key it revoked", identity.ErrNotProven, req.SiteID)
		}
	}
	if err != nil {
		s.log.Warn("token redemption refused", "remote", c.RemoteAddr().String(), "claimed", req.SiteID.String(), "err", err)
		identity.WriteMessage(c, &identity.RedeemResponse{Code: identity.ErrorCode(err), Message: err.Error()})
		return
	}
	resp := s.redeem(req)
	if resp.Code != "" {
		s.log.Warn("token refused", "token", req.TokenID, "peer", req.SiteName, "reason", resp.Message)
	} else {
		s.log.Info("token redeemed: link made", "peer", req.SiteName, "peerID", req.SiteID.String())
	}
	identity.WriteMessage(c, resp)
}

// redeem spends a use of the token and signs the redeemer's certificate, in
// one change of the state: if it cannot be saved, the token is not spent and
// the redeemer is told so.
func (s *Site) redeem(req *identity.RedeemRequest) *identity.RedeemResponse {
	refused := func(err error) *identity.RedeemResponse {
		return &identity.RedeemResponse{Code: identity.ErrorCode(err), Message: err.Error()}
	}
	if req.SiteID == s.id {
		return &identity.RedeemResponse{Code: identity.CodeInvalid, Message: "a site cannot link to itself: redeem the token at another site"}
	}
	// A bad certificate request must not spend a use of the token.
	if err := identity.CheckCSR(req.CSR); err != nil {
		return refused(err)
	}
	now := time.Now()
	var certPEM []byte
	err := s.commit(func(st *state) error {
		if err := st.Tokens.Redeem(now, req.TokenID, req.Secret, req.SiteID); err != nil {
			return err
		}
		if len(st.Inbound)+len(st.Outbound) >= maxLinks && !st.hasInbound(req.SiteID) {
			return limitError("links", maxLinks, "delete a link first")
		}
		cert, serial, err := s.ca.SignClient(now, req.CSR, req.SiteID, req.SiteName, clientCertTTL)
		if err != nil {
			return err
		}
		certPEM = cert
		il := inboundLink{Name: st.uniqueLinkName(req.SiteName), PeerID: req.SiteID.String(), PeerName: req.SiteName, Serial: serial, Created: now}
		// A site that links again replaces its old link: one certificate per peer.
		st.Inbound = slices.DeleteFunc(st.Inbound, func(x inboundLink) bool { return x.PeerID == il.PeerID })
		st.Inbound = append(st.Inbound, il)
		return nil
	})
	if err != nil {
		return refused(err)
	}
	return &identity.RedeemResponse{CertPEM: certPEM, IssuerID: s.id, IssuerName: s.name}
}

func (st *state) hasInbound(peer siteid.ID) bool {
	return slices.ContainsFunc(st.Inbound, func(il inboundLink) bool { return il.PeerID == peer.String() })
}

// uniqueLinkName is base, or base-N when a link of that name exists.
func (st *state) uniqueLinkName(base string) string {
	taken := func(n string) bool {
		return slices.ContainsFunc(st.Outbound, func(l outboundLink) bool { return l.Name == n }) ||
			slices.ContainsFunc(st.Inbound, func(l inboundLink) bool { return l.Name == n })
	}
	name := base
	for i := 2; taken(name); i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	return name
}

// redeemToken is the redeemer's side: it proves the token's secret to the
// issuer and gets back a link certificate for a new key.
func (s *Site) redeemToken(ctx context.Context, tok *resource.AccessToken) (resp *identity.RedeemResponse, keyPEM []byte, err error) {
	issuer, err := siteid.Parse(tok.Spec.IssuerID)
	if err != nil {
		return nil, nil, fmt.Errorf("token: %w", err)
	}
	pool, err := poolFromPEM(tok.Spec.CA)
	if err != nil {
		return nil, nil, fmt.Errorf("token: %w", err)
	}
	keyPEM, csr, err := identity.NewKey()
	if err != nil {
		return nil, nil, err
	}
	c, err := dialAny(ctx, tok.Spec.Addresses, identity.ClientTLSConfig(pool, issuer, nil, identity.ALPNRedeem))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach the issuing site %s: %w", tok.Spec.IssuerName, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	req := &identity.RedeemRequest{TokenID: tok.Spec.ID, Secret: tok.Spec.Secret, SiteName: s.name, CSR: csr, Addresses: s.opts.Advertise}
	binding, err := identity.RedeemBinding(c.ConnectionState())
	if err == nil {
		req.Prove(s.op.Load(), binding)
		err = identity.WriteMessage(c, req)
	}
	if err == nil {
		resp, err = identity.ReadResponse(c)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("token redemption with %s failed: %w", tok.Spec.IssuerName, err)
	}
	if err := identity.ResponseError(resp); err != nil {
		return nil, nil, err
	}
	return resp, keyPEM, nil
}
