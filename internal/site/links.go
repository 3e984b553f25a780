package site

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/siteid"
)

// clientCertTTL is long because a link's certificate is revoked by deleting the
// link at the issuer, not by expiry.
const clientCertTTL = 5 * 365 * 24 * time.Hour

// handshakeTimeout bounds a TLS handshake and a redemption exchange, so a silent
// peer cannot hold an accept goroutine.
const handshakeTimeout = 10 * time.Second

// peerConn is one established link session.
type peerConn struct {
	peer     siteid.ID
	peerName string
	linkName string
	cost     uint32
	inbound  bool
	sess     *link.Session

	// The peer may send its records before this side has registered it
	// (each side registers after its own hello exchange): the router would
	// drop records of a site it cannot reach yet, and the peer, having sent
	// them, would not send them again. They wait in early until then.
	mu    sync.Mutex
	up    bool
	early [][]byte
}

// maxEarlyRecords bounds what a peer may send before it is registered.
const maxEarlyRecords = 4096

// hello is the first control message each side sends: what the other side needs
// for its record and that the certificate does not carry.
type hello struct {
	Name string `json:"name"`
	Cost uint32 `json:"cost"`
}

// Control message types: the first byte of every control-channel message.
const (
	ctlHello  byte = 1
	ctlRecord byte = 2
)

// maxHello bounds the hello decoder.
const maxHello = 4 << 10

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

func (s *Site) serveLinkConn(c net.Conn) {
	tc := tls.Server(c, s.serverTLS)
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.log.Warn("link handshake refused", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	cs := tc.ConnectionState()
	switch cs.NegotiatedProtocol {
	case identity.ALPNRedeem:
		s.serveRedeem(tc)
	case identity.ALPNLink:
		peer, err := identity.PeerSiteID(cs.PeerCertificates[0])
		if err != nil {
			tc.Close()
			return
		}
		s.mu.Lock()
		var il *inboundLink
		for i := range s.st.Inbound {
			if s.st.Inbound[i].PeerID == peer.String() {
				il = &s.st.Inbound[i]
			}
		}
		s.mu.Unlock()
		if il == nil {
			tc.Close()
			return
		}
		s.runSession(tc, peer, il.PeerName, il.Name, 0, true)
	default:
		tc.Close()
	}
}

// allowPeer accepts a link client certificate only if this site issued it to that
// peer and the link was not deleted since.
func (s *Site) allowPeer(peer siteid.ID, serial string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, il := range s.st.Inbound {
		if il.PeerID == peer.String() {
			if il.Serial == serial {
				return nil
			}
			return fmt.Errorf("certificate %s was not issued to site %s (it holds %s)", serial, peer, il.Serial)
		}
	}
	return fmt.Errorf("site %s has no link here: it was deleted or never made; redeem a new token", peer)
}

// serveRedeem is the issuer's side of token redemption.
func (s *Site) serveRedeem(c *tls.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	req, err := identity.ReadRequest(c)
	if err != nil {
		s.log.Warn("bad redemption request", "remote", c.RemoteAddr(), "err", err)
		identity.WriteMessage(c, &identity.RedeemResponse{Code: identity.ErrorCode(err), Message: err.Error()})
		return
	}
	resp := s.redeem(req)
	if resp.Code != "" {
		s.log.Warn("token refused", "token", req.TokenID, "peer", req.SiteName, "reason", resp.Message)
	} else {
		s.log.Info("token redeemed: link made", "peer", req.SiteName, "peerID", req.SiteID)
	}
	identity.WriteMessage(c, resp)
}

func (s *Site) redeem(req *identity.RedeemRequest) *identity.RedeemResponse {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.SiteID == s.id {
		return &identity.RedeemResponse{Code: identity.CodeInvalid, Message: "a site cannot link to itself"}
	}
	// A bad certificate request must not spend a use of the token.
	if err := identity.CheckCSR(req.CSR); err != nil {
		return &identity.RedeemResponse{Code: identity.ErrorCode(err), Message: err.Error()}
	}
	if err := s.st.Tokens.Redeem(now, req.TokenID, req.Secret, req.SiteID); err != nil {
		return &identity.RedeemResponse{Code: identity.ErrorCode(err), Message: err.Error()}
	}
	certPEM, serial, err := s.ca.SignClient(now, req.CSR, req.SiteID, req.SiteName, clientCertTTL)
	if err != nil {
		return &identity.RedeemResponse{Code: identity.ErrorCode(err), Message: err.Error()}
	}
	il := inboundLink{Name: s.uniqueLinkNameLocked(req.SiteName), PeerID: req.SiteID.String(), PeerName: req.SiteName, Serial: serial, Created: now}
	// A site that links again replaces its old link: one certificate per peer.
	s.st.Inbound = slices.DeleteFunc(s.st.Inbound, func(x inboundLink) bool { return x.PeerID == il.PeerID })
	s.st.Inbound = append(s.st.Inbound, il)
	s.saveLocked()
	return &identity.RedeemResponse{CertPEM: certPEM, IssuerID: s.id, IssuerName: s.st.Name}
}

func (s *Site) uniqueLinkNameLocked(base string) string {
	taken := func(n string) bool {
		for _, l := range s.st.Outbound {
			if l.Name == n {
				return true
			}
		}
		for _, l := range s.st.Inbound {
			if l.Name == n {
				return true
			}
		}
		return false
	}
	name := base
	for i := 2; taken(name); i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	return name
}

// runSession runs one established link until it ends. cost is 0 for inbound
// links: the dialing side chose it and tells it in its hello.
func (s *Site) runSession(c net.Conn, peer siteid.ID, peerName, linkName string, cost uint32, inbound bool) {
	pc := &peerConn{peer: peer, peerName: peerName, linkName: linkName, cost: cost, inbound: inbound}
	helloCh := make(chan hello, 1)
	cfg := s.opts.Link
	cfg.Logger = s.log.With("peer", peerName)
	cfg.OnControl = func(msg []byte) { s.onControl(pc, msg, helloCh) }
	if inbound {
		pc.sess = link.Server(c, cfg)
	} else {
		pc.sess = link.Client(c, cfg)
		if err := s.sendHello(pc); err != nil {
			pc.sess.Close()
			return
		}
	}
	if inbound {
		select {
		case h := <-helloCh:
			pc.cost = max(h.Cost, 1)
			if err := s.sendHello(pc); err != nil {
				pc.sess.Close()
				return
			}
		case <-pc.sess.Done():
			return
		case <-time.After(handshakeTimeout):
			s.log.Warn("peer sent no hello; closing link", "peer", peerName)
			pc.sess.Close()
			return
		}
	}
	s.addPeer(pc)
	pc.mu.Lock()
	pc.up = true
	early := pc.early
	pc.early = nil
	pc.mu.Unlock()
	for _, b := range early {
		s.onRecord(pc, b)
	}
	s.log.Info("link up", "link", linkName, "peer", peerName, "cost", pc.cost, "inbound", inbound)
	ctx, cancel := context.WithCancel(s.ctx)
	go func() {
		<-pc.sess.Done()
		cancel()
	}()
	for {
		st, err := pc.sess.Accept(ctx)
		if err != nil {
			break
		}
		s.goFunc(func() { s.handleStream(st) })
	}
	pc.sess.Close()
	s.removePeer(pc)
	s.log.Info("link down", "link", linkName, "peer", peerName, "err", pc.sess.Err())
}

func (s *Site) sendHello(pc *peerConn) error {
	b, _ := json.Marshal(hello{Name: s.st.Name, Cost: pc.cost})
	return pc.sess.SendControl(append([]byte{ctlHello}, b...))
}

// onControl handles a control message of a link. A malformed one is a protocol
// violation by the peer: the link closes, with the reason logged.
func (s *Site) onControl(pc *peerConn, msg []byte, helloCh chan hello) {
	if len(msg) == 0 {
		pc.sess.CloseWithError(errors.New("empty control message"))
		return
	}
	switch msg[0] {
	case ctlHello:
		h, err := decodeHello(msg[1:])
		if err != nil {
			s.log.Warn("malformed hello; closing link", "peer", pc.peerName, "err", err)
			pc.sess.CloseWithError(err)
			return
		}
		select {
		case helloCh <- h:
		default:
		}
	case ctlRecord:
		pc.mu.Lock()
		if !pc.up {
			if len(pc.early) < maxEarlyRecords {
				pc.early = append(pc.early, slices.Clone(msg[1:]))
				pc.mu.Unlock()
				return
			}
			pc.mu.Unlock()
			pc.sess.CloseWithError(fmt.Errorf("over %d site records before the link was up", maxEarlyRecords))
			return
		}
		pc.mu.Unlock()
		s.onRecord(pc, msg[1:])
	default:
		// Unknown types are skipped so that newer peers can add messages.
	}
}

func (s *Site) onRecord(pc *peerConn, b []byte) {
	if err := s.receiveRecord(pc, b); err != nil {
		s.log.Warn("malformed site record; closing link", "peer", pc.peerName, "err", err)
		pc.sess.CloseWithError(err)
	}
}

// maxLinkCost keeps path sums far from overflow: 32 hops of the largest cost
// still fit easily in the router's uint64 costs.
const maxLinkCost = 1 << 24

// decodeHello validates a peer's hello.
func decodeHello(b []byte) (hello, error) {
	var h hello
	if len(b) > maxHello {
		return h, fmt.Errorf("hello of %d bytes is over the limit of %d", len(b), maxHello)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, fmt.Errorf("malformed hello: %w", err)
	}
	if dec.More() {
		return h, errors.New("malformed hello: trailing data")
	}
	if h.Cost > maxLinkCost {
		return h, fmt.Errorf("hello: cost %d is over the limit of %d", h.Cost, maxLinkCost)
	}
	if err := resource.ValidateName(h.Name); err != nil {
		return h, fmt.Errorf("hello: %w", err)
	}
	return h, nil
}

func (s *Site) addPeer(pc *peerConn) {
	s.mu.Lock()
	first := len(s.peers[pc.peer]) == 0
	s.peers[pc.peer] = append(s.peers[pc.peer], pc)
	s.mu.Unlock()
	if first {
		s.neighborUp(pc.peer)
	} else {
		s.announce()
	}
}

func (s *Site) removePeer(pc *peerConn) {
	s.mu.Lock()
	pcs := slices.DeleteFunc(s.peers[pc.peer], func(x *peerConn) bool { return x == pc })
	last := len(pcs) == 0
	if last {
		delete(s.peers, pc.peer)
	} else {
		s.peers[pc.peer] = pcs
	}
	s.mu.Unlock()
	if last {
		s.neighborDown(pc.peer)
	} else {
		s.announce()
	}
}

// session returns the cheapest live session to a neighbour.
func (s *Site) session(peer siteid.ID) *link.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *peerConn
	for _, pc := range s.peers[peer] {
		if best == nil || pc.cost < best.cost {
			best = pc
		}
	}
	if best == nil {
		return nil
	}
	return best.sess
}

// dialer keeps one outbound link connected, with backoff between attempts.
type dialer struct {
	cancel context.CancelFunc
	done   chan struct{}
	// up is closed once the first session is established (link create waits on it).
	up chan struct{}
	// lastErr is the reason of the last failed attempt; guarded by Site.mu.
	lastErr string
}

func (s *Site) startDialer(ol outboundLink) *dialer {
	ctx, cancel := context.WithCancel(s.ctx)
	d := &dialer{cancel: cancel, done: make(chan struct{}), up: make(chan struct{})}
	s.mu.Lock()
	s.dialers[ol.Name] = d
	s.mu.Unlock()
	s.goFunc(func() {
		defer close(d.done)
		s.dialLoop(ctx, ol, d)
	})
	return d
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func (s *Site) dialLoop(ctx context.Context, ol outboundLink, d *dialer) {
	cert, err := identity.X509KeyPair([]byte(ol.CertPEM), []byte(ol.KeyPEM))
	if err != nil {
		s.setDialErr(d, fmt.Sprintf("link credentials are damaged: %v; delete and re-create the link", err))
		return
	}
	issuer, err := siteid.Parse(ol.IssuerID)
	if err != nil {
		s.setDialErr(d, err.Error())
		return
	}
	pool, err := poolFromPEM(ol.CAPEM)
	if err != nil {
		s.setDialErr(d, err.Error())
		return
	}
	cfg := identity.ClientTLSConfig(pool, issuer, &cert, identity.ALPNLink)
	backoff := minBackoff
	for attempt := 0; ; attempt++ {
		c, err := dialAny(ctx, ol.Addresses, cfg)
		if err == nil {
			s.setDialErr(d, "")
			backoff = minBackoff
			select {
			case <-d.up:
			default:
				close(d.up)
			}
			s.runSession(c, issuer, ol.IssuerName, ol.Name, ol.Cost, false)
		} else {
			s.setDialErr(d, err.Error())
			s.log.Debug("link dial failed", "link", ol.Name, "attempt", attempt, "err", err)
		}
		// Full jitter keeps many sites that lost the same peer from
		// reconnecting in lockstep.
		wait := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
		backoff = min(backoff*2, maxBackoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *Site) setDialErr(d *dialer, msg string) {
	s.mu.Lock()
	d.lastErr = msg
	s.mu.Unlock()
}

// dialAny tries the issuer's addresses in turn.
func dialAny(ctx context.Context, addrs []string, cfg *tls.Config) (*tls.Conn, error) {
	var errs []error
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		d := tls.Dialer{Config: cfg}
		c, err := d.DialContext(dctx, "tcp", a)
		cancel()
		if err == nil {
			return c.(*tls.Conn), nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
	}
	return nil, errors.Join(errs...)
}

// CreateLink redeems an access token issued by another site, stores the link and
// waits until it is up or ctx ends. It returns the link's name.
func (s *Site) CreateLink(ctx context.Context, name string, cost uint32, tok *resource.AccessToken) (string, error) {
	if err := tok.Default(); err != nil {
		return "", err
	}
	issuer, err := siteid.Parse(tok.Spec.IssuerID)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	pool, err := poolFromPEM(tok.Spec.CA)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	keyPEM, csr, err := identity.NewKey()
	if err != nil {
		return "", err
	}
	c, err := dialAny(ctx, tok.Spec.Addresses, identity.ClientTLSConfig(pool, issuer, nil, identity.ALPNRedeem))
	if err != nil {
		return "", fmt.Errorf("cannot reach the issuing site %s: %w", tok.Spec.IssuerName, err)
	}
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	err = identity.WriteMessage(c, &identity.RedeemRequest{TokenID: tok.Spec.ID, Secret: tok.Spec.Secret, SiteID: s.id, SiteName: s.st.Name, CSR: csr, Addresses: s.opts.Advertise})
	var resp *identity.RedeemResponse
	if err == nil {
		resp, err = identity.ReadResponse(c)
	}
	c.Close()
	if err != nil {
		return "", fmt.Errorf("token redemption with %s failed: %w", tok.Spec.IssuerName, err)
	}
	if err := identity.ResponseError(resp); err != nil {
		return "", err
	}
	if cost == 0 {
		cost = 1
	}
	s.mu.Lock()
	if name == "" {
		name = tok.Spec.IssuerName
	}
	// Re-linking to the same issuer replaces the old link.
	var old *dialer
	for _, l := range s.st.Outbound {
		if l.IssuerID == issuer.String() {
			old = s.dialers[l.Name]
			delete(s.dialers, l.Name)
		}
	}
	s.st.Outbound = slices.DeleteFunc(s.st.Outbound, func(l outboundLink) bool { return l.IssuerID == issuer.String() })
	name = s.uniqueLinkNameLocked(name)
	ol := outboundLink{Name: name, Cost: cost, IssuerID: issuer.String(), IssuerName: resp.IssuerName,
		Addresses: tok.Spec.Addresses, CAPEM: tok.Spec.CA, CertPEM: string(resp.CertPEM), KeyPEM: string(keyPEM)}
	s.st.Outbound = append(s.st.Outbound, ol)
	s.saveLocked()
	s.mu.Unlock()
	if old != nil {
		s.stopDialer(old)
	}
	d := s.startDialer(ol)
	select {
	case <-d.up:
		return name, nil
	case <-ctx.Done():
		s.mu.Lock()
		why := d.lastErr
		s.mu.Unlock()
		return name, fmt.Errorf("link %s was created but is not up yet (%s); it keeps retrying: see `weft link list`", name, why)
	}
}

func (s *Site) stopDialer(d *dialer) {
	d.cancel()
	<-d.done
}

// ErrNoLink is returned when a link name is unknown.
var ErrNoLink = errors.New("no such link")

// DeleteLink removes a link by name. For a link this site issued, that revokes the
// peer's certificate, so the peer cannot come back without a new token.
func (s *Site) DeleteLink(name string) error {
	s.mu.Lock()
	var closeSess []*link.Session
	d := s.dialers[name]
	delete(s.dialers, name)
	n := len(s.st.Outbound) + len(s.st.Inbound)
	s.st.Outbound = slices.DeleteFunc(s.st.Outbound, func(l outboundLink) bool { return l.Name == name })
	s.st.Inbound = slices.DeleteFunc(s.st.Inbound, func(l inboundLink) bool { return l.Name == name })
	found := n != len(s.st.Outbound)+len(s.st.Inbound)
	if found {
		s.saveLocked()
	}
	for _, pcs := range s.peers {
		for _, pc := range pcs {
			if pc.linkName == name {
				closeSess = append(closeSess, pc.sess)
			}
		}
	}
	s.mu.Unlock()
	if !found {
		return fmt.Errorf("%w %q: see `weft link list`", ErrNoLink, name)
	}
	if d != nil {
		d.cancel()
	}
	for _, sess := range closeSess {
		sess.CloseWithError(errors.New("link deleted"))
	}
	if d != nil {
		<-d.done
	}
	return nil
}

// IssueToken makes an access token for another site to link to this one.
func (s *Site) IssueToken(ttl time.Duration, uses int) (*resource.AccessToken, error) {
	s.mu.Lock()
	id, secret, expires, err := s.st.Tokens.Issue(time.Now(), ttl, uses)
	if err == nil {
		s.saveLocked()
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	t := &resource.AccessToken{Spec: resource.AccessTokenSpec{
		ID: id, Secret: secret, Uses: uses, IssuerID: s.id.String(), IssuerName: s.st.Name,
		Addresses: s.opts.Advertise, CA: string(s.ca.CertPEM()),
	}}
	t.Spec.Expires.Time = expires
	t.Name = s.st.Name + "-" + id[:8]
	return t, t.Default()
}
