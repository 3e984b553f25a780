package site

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// peerConn is one link session and its handshake.
type peerConn struct {
	// certPeer is the site the peer's certificate names, the ID the link
	// was made under; peer is the site it proved in its hello (the hash of
	// its identity key), set under Site.mu when the link comes up. The two
	// differ for a peer that moved from a random ID since the link was made.
	certPeer siteid.ID
	peer     siteid.ID
	peerName string
	linkName string
	inbound  bool
	sess     *link.Session
	out      *outbox

	// cost is set once the handshake is done, before the peer is
	// registered; mu guards it and hs.
	mu   sync.Mutex
	cost uint32
	hs   handshake
	// refused is set when the issuer refused the link for good.
	refused *refusal
	// rotating, while RotateLink waits, takes the issuer's answer.
	rotating chan rotateAnswer
	// onUp, if set, is called once the link is up.
	onUp func()
}

// newPeerConn is a session about to start on an established connection:
// accepted (inbound) or dialed.
func newPeerConn(peer siteid.ID, peerName, linkName string, inbound bool) *peerConn {
	return &peerConn{certPeer: peer, peerName: peerName, linkName: linkName, inbound: inbound, out: newOutbox()}
}

// runSession runs one link session on c until it ends and returns the
// issuer's refusal if it refused the link for good. cost is the dialer's
// choice; an accepting site learns it from the hello.
func (s *Site) runSession(c *tls.Conn, pc *peerConn, cost uint32) *refusal {
	// The hello proves each side's identity key on this connection.
	cs := c.ConnectionState()
	binding, err := cs.ExportKeyingMaterial(helloExporter, nil, 32)
	if err != nil {
		c.Close()
		s.log.Warn("link refused: no TLS exporter", "link", pc.linkName, "err", err)
		return nil
	}
	pc.hs = handshake{inbound: pc.inbound, self: s.name, key: s.op.Load(), binding: binding, now: time.Now(), revoked: s.keyRevoked}
	cfg := s.opts.Link
	cfg.Logger = s.log.With("peer", pc.peerName)
	// The session reads from its start: its first control message may
	// come before pc.sess is set.
	started := make(chan struct{})
	cfg.OnControl = func(msg []byte) {
		<-started
		s.onControl(pc, msg)
	}
	// Streams go from the read loop straight to a goroutine of their own,
	// not through one that waits in Accept: a hand-off less per stream.
	// peer is only touched here, on the read loop.
	var peer siteid.ID
	cfg.OnStream = func(st *link.Stream) {
		<-started
		if peer.IsZero() {
			// Set once, under mu, when the link came up: read until
			// then, not for every stream.
			s.mu.Lock()
			peer = pc.peer
			s.mu.Unlock()
		}
		from := peer
		s.goStream(func() { s.handleStream(st, from) })
	}
	if pc.inbound {
		pc.sess = link.Server(c, cfg)
	} else {
		pc.sess = link.Client(c, cfg)
	}
	close(started)
	pc.mu.Lock()
	act := pc.hs.start(cost)
	pc.mu.Unlock()
	s.act(pc, act)
	hsTimer := time.AfterFunc(handshakeTimeout, func() {
		pc.mu.Lock()
		act := pc.hs.timeout()
		pc.mu.Unlock()
		s.act(pc, act)
	})
	ctx, cancel := context.WithCancel(s.ctx)
	s.goFunc(func() {
		<-pc.sess.Done()
		cancel()
	})
	s.goFunc(func() { pc.out.run(ctx, pc.sess, s.metrics.RecordsFlooded.Inc) })
	select {
	case <-pc.sess.Done():
	case <-ctx.Done():
	}
	hsTimer.Stop()
	pc.sess.Close()
	// OnStream starts goroutines of the site: none may start once this
	// one, which the site waits for, has returned.
	pc.sess.Wait()
	if s.removePeer(pc) {
		s.logLinkDown(pc)
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.refused
}

// logLinkDown says a link went down: at Info when either side closed it,
// at Warn, with what to check, when the connection was lost (the peer killed
// or cut off, silent past the dead-peer timeout, or breaking the protocol),
// so that the console's recent errors show a site that vanished.
func (s *Site) logLinkDown(pc *peerConn) {
	err := pc.sess.Err()
	if errors.Is(err, link.ErrConnLost) || errors.Is(err, link.ErrPeerDead) || errors.Is(err, link.ErrProtocol) {
		s.log.Warn("link down", "link", pc.linkName, "peer", pc.peerName, "err", err,
			"hint", "the connection to the peer site was lost: check that it runs and is reachable; a dialled link reconnects on its own")
		return
	}
	s.log.Info("link down", "link", pc.linkName, "peer", pc.peerName, "err", err)
}

// onControl steps the session's handshake with a control message; it runs on
// the session's read loop, so the steps of one session are in order.
func (s *Site) onControl(pc *peerConn, msg []byte) {
	pc.mu.Lock()
	act := pc.hs.control(msg)
	pc.mu.Unlock()
	s.act(pc, act)
}

// act carries out a handshake step's action.
func (s *Site) act(pc *peerConn, a hsAction) {
	if a.send != nil {
		if err := pc.sess.SendControl(a.send); err != nil {
			return // the session is closing
		}
	}
	if a.up {
		pc.mu.Lock()
		pc.cost = pc.hs.peer.Cost
		site := pc.hs.site
		pc.mu.Unlock()
		if site != pc.certPeer {
			s.log.Info("peer proved a key-derived ID other than its link certificate's: it moved from a random ID; routing uses the proven one",
				"link", pc.linkName, "peer", pc.peerName, "certID", pc.certPeer.String(), "id", site.String())
		}
		if s.isRevoked(site) {
			s.log.Warn("link refused: the peer site is revoked", "link", pc.linkName, "peer", pc.peerName, "peerID", site.String())
			pc.sess.CloseWithError(errors.New("this site is revoked"))
			return
		}
		s.addPeer(pc, site)
		s.log.Info("link up", "link", pc.linkName, "peer", pc.peerName, "cost", pc.cost, "inbound", pc.inbound)
		// Revocations first, so the peer drops revoked sites before their
		// records could reach it from here.
		for _, b := range s.revocations() {
			if pc.sess.SendControl(append([]byte{ctlRevoke}, b...)) != nil {
				break
			}
		}
		if pc.onUp != nil {
			pc.onUp()
		}
	}
	if a.record != nil && !s.takeRecord(pc, a.record) {
		return
	}
	if a.revoke != nil {
		s.takeRevocation(pc, a.revoke)
	}
	if a.rotate != nil {
		s.goFunc(func() { s.serveRotate(pc, a.rotate) })
	}
	if a.rotated != nil {
		s.takeRotated(pc, a.rotated)
	}
	if a.refused != nil {
		pc.mu.Lock()
		pc.refused = a.refused
		pc.mu.Unlock()
	}
	if a.withdrawn {
		// Saving the state is I/O: not on the session's read loop.
		s.goFunc(func() { s.forgetWithdrawn(pc) })
	}
	if a.close != nil {
		if a.refused == nil && !a.withdrawn {
			s.log.Warn("link handshake failed; closing link", "link", pc.linkName, "peer", pc.peerName, "err", a.close)
		}
		pc.sess.CloseWithError(a.close)
	}
}

// takeRecord checks a site record a neighbour sent and hands it to the
// router. A record that is not signed by the site it names, or altered, is
// dropped and counted, and the link it came on is logged (once per distinct
// record); a malformed one closes the link, since every site re-encodes
// what it forwards. It reports whether the session goes on.
func (s *Site) takeRecord(pc *peerConn, b []byte) bool {
	rec, err, repeated := s.records.check(b)
	if err == nil && s.keyRevoked(rec.Key[:]) {
		err = fmt.Errorf("%w: site %s, seq %d", errRevokedKey, rec.Site, rec.Seq)
	}
	if err == nil {
		s.feedRouter(routerInput{peer: pc.peer, kind: inputRecord, rec: rec})
		return true
	}
	reason := rejectReason(err)
	s.metrics.RecordsRejected.WithLabelValues(reason).Inc()
	if reason == rejectMalformed {
		s.log.Warn("malformed site record; closing link", "link", pc.linkName, "peer", pc.peerName, "err", err)
		pc.sess.CloseWithError(err)
		return false
	}
	if !repeated {
		s.log.Warn("site record refused: dropped", "reason", reason, "link", pc.linkName, "peer", pc.peerName, "peerID", pc.peer.String(), "err", err)
	}
	return true
}

// addPeer registers a session whose handshake is done and proved site.
func (s *Site) addPeer(pc *peerConn, site siteid.ID) {
	s.mu.Lock()
	pc.peer = site
	first := len(s.peers[pc.peer]) == 0
	s.peers[pc.peer] = append(s.peers[pc.peer], pc)
	s.publishSessionsLocked()
	s.mu.Unlock()
	if first {
		s.feedRouter(routerInput{peer: pc.peer, kind: inputUp})
	} else {
		s.announce()
	}
}

// removePeer forgets a session that ended and reports whether it had been
// registered.
func (s *Site) removePeer(pc *peerConn) bool {
	s.mu.Lock()
	peer := pc.peer
	n := len(s.peers[pc.peer])
	pcs := slices.DeleteFunc(s.peers[pc.peer], func(x *peerConn) bool { return x == pc })
	found := len(pcs) != n
	last := len(pcs) == 0
	if last {
		delete(s.peers, pc.peer)
	} else {
		s.peers[pc.peer] = pcs
	}
	if found {
		s.publishSessionsLocked()
	}
	s.mu.Unlock()
	switch {
	case !found:
	case last:
		s.feedRouter(routerInput{peer: peer, kind: inputDown})
	default:
		s.announce()
	}
	return found
}

// publishSessionsLocked rebuilds the cheapest-session map the data path reads.
func (s *Site) publishSessionsLocked() {
	m := make(map[siteid.ID]*link.Session, len(s.peers))
	for peer, pcs := range s.peers {
		m[peer] = cheapest(pcs).sess
	}
	s.sessions.Store(&m)
}

// cheapest is the session of lowest cost among a neighbour's sessions; the
// first registered wins a tie.
func cheapest(pcs []*peerConn) *peerConn {
	best := pcs[0]
	for _, pc := range pcs[1:] {
		if pc.cost < best.cost {
			best = pc
		}
	}
	return best
}

// session returns the cheapest live session to a neighbour, without a lock:
// every stream a site opens or relays asks it.
func (s *Site) session(peer siteid.ID) *link.Session {
	return (*s.sessions.Load())[peer]
}

// bestPeer is the cheapest registered session to a neighbour, nil if none.
func (s *Site) bestPeer(peer siteid.ID) *peerConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pcs := s.peers[peer]; len(pcs) > 0 {
		return cheapest(pcs)
	}
	return nil
}

// outbox holds the site records waiting to be sent on one session: the
// latest of each origin site only, since a newer record supersedes an older
// one of the same site. So the router never waits for a slow link, and what
// waits for one is bounded by the number of sites.
type outbox struct {
	mu      sync.Mutex
	pending map[siteid.ID]routing.Record
	wake    chan struct{}
}

func newOutbox() *outbox {
	return &outbox{pending: map[siteid.ID]routing.Record{}, wake: make(chan struct{}, 1)}
}

// put queues rec unless a newer record of its site is already waiting.
func (o *outbox) put(rec routing.Record) {
	o.mu.Lock()
	if old, ok := o.pending[rec.Site]; !ok || old.Seq < rec.Seq {
		o.pending[rec.Site] = rec
	}
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// take removes and returns everything waiting, in no particular order:
// records of different sites are independent.
func (o *outbox) take() []routing.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]routing.Record, 0, len(o.pending))
	for _, rec := range o.pending {
		out = append(out, rec)
	}
	clear(o.pending)
	return out
}

// run sends what is put until ctx ends or a send fails (the session is then
// closing, and the neighbour gets the whole database on its next session).
func (o *outbox) run(ctx context.Context, sess *link.Session, sent func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		}
		for _, rec := range o.take() {
			b, err := rec.MarshalBinary()
			if err != nil {
				continue // a record that decoded or validated encodes
			}
			if sess.SendControl(append([]byte{ctlRecord}, b...)) != nil {
				return
			}
			sent()
		}
	}
}
