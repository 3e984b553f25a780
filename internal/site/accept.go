package site

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/siteid"
)

// handshakeTimeout bounds a TLS handshake, a redemption exchange and a link's
// hello exchange, so that a silent peer cannot hold an accept goroutine.
const handshakeTimeout = 10 * time.Second

// refusalLinger is how long an issuer keeps a refused session open for its
// refusal to reach the dialer.
const refusalLinger = time.Second

func (s *Site) acceptLinks() {
	for {
		c, err := s.linkLn.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("link listener stopped", "err", err)
			}
			return
		}
		s.goFunc(func() { s.serveLinkConn(c) })
	}
}

// serveLinkConn serves one connection to the link listener: a token
// redemption, or a link whose certificate this site's CA signed.
func (s *Site) serveLinkConn(c net.Conn) {
	tc := tls.Server(link.NewBufferedConn(c), s.serverTLS)
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.log.Warn("link handshake refused", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	cs := tc.ConnectionState()
	switch cs.NegotiatedProtocol {
	case identity.ALPNRedeem:
		s.serveRedeem(tc)
	case identity.ALPNLink:
		leaf := cs.PeerCertificates[0]
		peer, err := identity.PeerSiteID(leaf)
		if err != nil {
			tc.Close()
			return
		}
		il, ref := s.admitPeer(peer, identity.CertSerial(leaf))
		if ref != nil {
			s.refuse(tc, peer, ref)
			return
		}
		s.runSession(tc, newPeerConn(peer, il.PeerName, il.Name, true), 0)
	default:
		tc.Close()
	}
}

// admitPeer finds the inbound link that a client certificate (chained to
// this site's CA, so issued here) belongs to, or says why this site no
// longer stands behind it.
func (s *Site) admitPeer(peer siteid.ID, serial string) (inboundLink, *refusal) {
	for _, il := range s.state().Inbound {
		if il.PeerID != peer.String() {
			continue
		}
		if il.Serial == serial {
			return il, nil
		}
		return inboundLink{}, &refusal{Reason: refusedSuperseded, Message: fmt.Sprintf(
			"site %s holds a newer link to %s than this credential (certificate %s): delete this link (`weft link delete`)", peer, s.name, serial)}
	}
	return inboundLink{}, &refusal{Reason: refusedRevoked, Message: fmt.Sprintf(
		"the link was deleted at %s, which revoked this credential: delete the link here and redeem a new token from %s", s.name, s.name)}
}

// refuse tells a dialer with a credential this site no longer stands behind
// why, then closes: the dialer stops instead of retrying in vain.
func (s *Site) refuse(c net.Conn, peer siteid.ID, r *refusal) {
	s.log.Info("link refused", "peerID", peer.String(), "reason", r.Reason)
	cfg := s.opts.Link
	cfg.Logger = s.log.With("peerID", peer.String())
	sess := link.Server(c, cfg)
	if sess.SendControl(encodeControl(ctlRefuse, r)) == nil {
		// Closing at once could cut the refusal off in the kernel's
		// buffers; the dialer closes first once it has read it.
		select {
		case <-sess.Done():
		case <-time.After(refusalLinger):
		case <-s.ctx.Done():
		}
	}
	sess.Close()
}
