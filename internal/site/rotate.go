package site

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"weft.dev/weft/internal/identity"
)

// Control messages of link certificate rotation: the dialer sends a
// certificate request over the live link, the issuer answers with a new
// certificate. The link's sessions carry on: TLS authenticated them when
// they began, and the next session uses the new certificate.
const (
	ctlRotate  byte = 6 // dialer -> issuer: rotateRequest
	ctlRotated byte = 7 // issuer -> dialer: rotateAnswer
)

type rotateRequest struct {
	CSR []byte `json:"csr"` // DER, as identity.NewKey makes it
}

type rotateAnswer struct {
	CertPEM []byte `json:"cert,omitempty"`
	Error   string `json:"error,omitempty"`
}

// rotateTimeout bounds how long a rotation waits for the issuer's answer.
const rotateTimeout = 10 * time.Second

// ErrLinkDown is returned when a link to rotate has no live session.
var ErrLinkDown = errors.New("the link is not up")

// RotateLink gets a new certificate (for a new key) for the outbound link
// name from its issuer, over the live link, and keeps it for the link's
// next sessions. Streams on the link carry on. The new certificate names
// this site's current ID, so a link made under a random ID from before
// identity keys moves to the key-derived one.
func (s *Site) RotateLink(ctx context.Context, name string) error {
	st := s.state()
	i := slices.IndexFunc(st.Outbound, func(l outboundLink) bool { return l.Name == name })
	if i < 0 {
		if slices.ContainsFunc(st.Inbound, func(l inboundLink) bool { return l.Name == name }) {
			return errInvalid(fmt.Errorf("link %s was made by %s redeeming a token of this site: rotate it there", name, name))
		}
		return fmt.Errorf("%w %q: see `weft link list`", ErrNoLink, name)
	}
	pc := s.liveOutbound(name)
	if pc == nil {
		return fmt.Errorf("%w: %s; rotate it once it is (see `weft link list`)", ErrLinkDown, name)
	}
	keyPEM, csr, err := identity.NewKey()
	if err != nil {
		return err
	}
	answer := make(chan rotateAnswer, 1)
	pc.mu.Lock()
	if pc.rotating != nil {
		pc.mu.Unlock()
		return errInvalid(fmt.Errorf("link %s is rotating already", name))
	}
	pc.rotating = answer
	pc.mu.Unlock()
	defer func() {
		pc.mu.Lock()
		pc.rotating = nil
		pc.mu.Unlock()
	}()
	if err := pc.sess.SendControl(encodeControl(ctlRotate, rotateRequest{CSR: csr})); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, rotateTimeout)
	defer cancel()
	var a rotateAnswer
	select {
	case a = <-answer:
	case <-pc.sess.Done():
		return fmt.Errorf("link %s went down while rotating; its certificate is unchanged: try again", name)
	case <-ctx.Done():
		return fmt.Errorf("link %s: the issuer did not answer the rotation: %w; its certificate is unchanged", name, ctx.Err())
	}
	if a.Error != "" {
		return fmt.Errorf("%s refused to rotate link %s: %s", pc.peerName, name, a.Error)
	}
	if _, err := identity.X509KeyPair(a.CertPEM, keyPEM); err != nil {
		return fmt.Errorf("%s answered link %s's rotation with a bad certificate: %w", pc.peerName, name, err)
	}
	err = s.commit(func(st *state) error {
		for i := range st.Outbound {
			if st.Outbound[i].Name == name {
				st.Outbound[i].CertPEM, st.Outbound[i].KeyPEM = string(a.CertPEM), string(keyPEM)
				// The issuer proved its key-derived ID on the link; a
				// link made under its old random ID moves to it.
				st.Outbound[i].IssuerID = pc.peer.String()
				return nil
			}
		}
		return fmt.Errorf("%w %q: it was deleted while rotating", ErrNoLink, name)
	})
	if err != nil {
		return err
	}
	s.log.Info("link certificate rotated", "link", name, "peer", pc.peerName)
	return nil
}

// liveOutbound is a live session of the outbound link name, nil if none.
func (s *Site) liveOutbound(name string) *peerConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pcs := range s.peers {
		for _, pc := range pcs {
			if pc.linkName == name && !pc.inbound {
				return pc
			}
		}
	}
	return nil
}

// serveRotate is the issuer's side: it signs a new certificate for the
// dialer's proven site and makes it the link's only admitted one. It does
// I/O and runs off the session's read loop.
func (s *Site) serveRotate(pc *peerConn, body []byte) {
	answer := func(a rotateAnswer) {
		pc.sess.SendControl(encodeControl(ctlRotated, a))
	}
	var req rotateRequest
	if err := decodeStrict(body, &req); err != nil {
		answer(rotateAnswer{Error: "rotation request: " + err.Error()})
		return
	}
	if err := identity.CheckCSR(req.CSR); err != nil {
		answer(rotateAnswer{Error: err.Error()})
		return
	}
	var certPEM []byte
	err := s.commit(func(st *state) error {
		i := slices.IndexFunc(st.Inbound, func(l inboundLink) bool {
			return l.Name == pc.linkName && (l.PeerID == pc.certPeer.String() || l.PeerID == pc.peer.String())
		})
		if i < 0 {
			return errors.New("the link was deleted here")
		}
		cert, serial, err := s.ca.SignClient(time.Now(), req.CSR, pc.peer, pc.peerName, clientCertTTL)
		if err != nil {
			return err
		}
		certPEM = cert
		st.Inbound[i].PeerID, st.Inbound[i].Serial = pc.peer.String(), serial
		return nil
	})
	if err != nil {
		s.log.Warn("link rotation refused", "link", pc.linkName, "peer", pc.peerName, "err", err)
		answer(rotateAnswer{Error: err.Error()})
		return
	}
	s.log.Info("link certificate rotated by the peer; the old one is refused from now on", "link", pc.linkName, "peer", pc.peerName)
	answer(rotateAnswer{CertPEM: certPEM})
}

// takeRotated hands the issuer's answer to the RotateLink waiting for it.
func (s *Site) takeRotated(pc *peerConn, body []byte) {
	var a rotateAnswer
	if err := decodeStrict(body, &a); err != nil {
		a = rotateAnswer{Error: "malformed answer: " + err.Error()}
	}
	pc.mu.Lock()
	ch := pc.rotating
	pc.mu.Unlock()
	if ch != nil {
		select {
		case ch <- a:
		default:
		}
	}
}

// rotationDue says whether an outbound link's certificate should be
// rotated now: it names an ID other than this site's (made before the site
// moved to its key-derived ID), or a third of its life is left.
func (s *Site) rotationDue(ol outboundLink, now time.Time) bool {
	cert, err := identity.ParseCertPEM([]byte(ol.CertPEM))
	if err != nil {
		return false // dialLoop reports damaged credentials
	}
	if id, err := identity.PeerSiteID(cert); err == nil && id != s.id {
		return true
	}
	return cert.NotAfter.Sub(now) < cert.NotAfter.Sub(cert.NotBefore)/3
}

// rotateDue rotates every live outbound link whose certificate is due.
func (s *Site) rotateDue(now time.Time) {
	for _, ol := range s.state().Outbound {
		if ol.Refused != "" || !s.rotationDue(ol, now) || s.liveOutbound(ol.Name) == nil {
			continue
		}
		if err := s.RotateLink(s.ctx, ol.Name); err != nil {
			s.log.Warn("automatic link certificate rotation failed; retrying later", "link", ol.Name, "err", err)
		}
	}
}
