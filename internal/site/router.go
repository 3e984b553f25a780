package site

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/opkey"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// routerQueue bounds the inputs waiting for the router. A link whose records
// arrive faster than the router takes them waits in its control callback,
// which holds back that link's reader and nothing else.
const routerQueue = 1024

// routerInput is one event for the router: a neighbour came up or went down,
// or sent a record.
type routerInput struct {
	peer siteid.ID
	kind inputKind
	rec  routing.Record
	// op, seal and prevSeal are the keys of an inputKeys.
	op             *opkey.Signer
	seal, prevSeal [routing.SealKeyLen]byte
	// key is the operational key of an inputRevokeKey.
	key [ed25519.PublicKeySize]byte
}

type inputKind uint8

const (
	inputUp inputKind = iota + 1
	inputDown
	inputRecord
	inputRevoke    // peer is the revoked site
	inputKeys      // seal and prevSeal are the site's seal keys, op its new operational key if not nil
	inputRevokeKey // key is a revoked operational key
)

// routerLoop drives the router, as raft's node.go drives raft.Raft: it alone
// calls the router, taking inputs from routerIn and re-originating the site
// record when announce asks. After each batch of inputs it publishes the new
// table, tells the services and the broker, and queues the records to send
// on each neighbour's outbox. It holds no lock while doing so, so the
// subsystems it calls may call announce (which never blocks) under their own.
func (s *Site) routerLoop() {
	for {
		local := false
		select {
		case <-s.ctx.Done():
			return
		case in := <-s.routerIn:
			local = s.routerStep(in)
		case <-s.localDue:
			local = true
		}
		// Take whatever else is waiting before computing routes once.
		for more := true; more; {
			select {
			case in := <-s.routerIn:
				local = s.routerStep(in) || local
			case <-s.localDue:
				local = true
			default:
				more = false
			}
		}
		if local {
			s.setLocal()
		}
		s.routerReady()
	}
}

// routerStep gives one input to the router and says whether this site's
// record must be originated anew (its links changed).
func (s *Site) routerStep(in routerInput) bool {
	switch in.kind {
	case inputUp:
		s.router.NeighborUp(in.peer)
		return true
	case inputDown:
		s.router.NeighborDown(in.peer)
		return true
	case inputRevoke:
		s.router.Revoke(in.peer)
		return false
	case inputRevokeKey:
		s.router.RevokeKey(in.key)
		return false
	case inputKeys:
		s.router.SetSealKey(in.seal, in.prevSeal)
		if in.op == nil {
			return false
		}
		if err := s.router.SetSigner(in.op); err != nil {
			s.log.Error("cannot sign with the new operational key", "err", err)
		}
		return false
	default:
		if s.router.Revoked(in.rec.Site) {
			s.metrics.RecordsRejected.WithLabelValues(rejectRevoked).Inc()
		} else if s.router.KeyRevoked(in.rec.Key) {
			// Checked before it was queued, revoked since.
			s.metrics.RecordsRejected.WithLabelValues(rejectRevokedKey).Inc()
		} else if seq, ok := s.router.Seq(in.rec.Site); ok && in.rec.Seq < seq {
			s.metrics.RecordsRejected.WithLabelValues(rejectStale).Inc()
		}
		s.router.Step(in.peer, in.rec)
		return false
	}
}

// setLocal gives the router this site's links, connectors and interests as
// they are now. A record over the routing limits is refused by the router,
// which keeps announcing the previous one; the admin API and the broker
// check those limits where input arrives, so this is a last line of defence.
func (s *Site) setLocal() {
	var interests []string
	if s.events != nil {
		interests = s.events.Interests()
	}
	if err := s.router.SetLocal(s.localLinks(), append(s.svc.Advertised(), s.advertisedNetworks()...), interests); err != nil {
		s.metrics.LimitRefusals.WithLabelValues("record").Inc()
		s.log.Error("site record over the routing limits; the network keeps the previous one: remove connectors or subscriptions", "err", err)
	}
	if err := s.router.SetPolicy(s.policyRecord()); err != nil {
		s.log.Error("site record with the address policy over the routing limits; the network keeps the previous one: remove exports or imports", "err", err)
	}
}

// routerReady publishes what the router produced.
func (s *Site) routerReady() {
	rd := s.router.Ready()
	s.router.Advance()
	if rd.TableChanged {
		t := s.restrict(s.router.Table())
		s.table.Store(t)
		s.metrics.RoutingSites.Set(float64(len(t.Sites())))
		s.svc.TableChanged()
		s.networksChanged(t)
		if s.events != nil {
			s.events.TableChanged()
		}
	}
	for _, m := range rd.Messages {
		if pc := s.bestPeer(m.To); pc != nil {
			pc.out.put(m.Record)
		}
		// else the neighbour left; it gets the whole database when it is back
	}
}

// feedRouter hands the router an input, waiting while its queue is full,
// unless the site stops.
func (s *Site) feedRouter(in routerInput) {
	select {
	case s.routerIn <- in:
	case <-s.ctx.Done():
	}
}

// announce asks the router goroutine to originate a new site record from the
// current links, connectors and interests. It never blocks, so it may be
// called under any lock: requests made before the router gets to them are
// served by one record.
func (s *Site) announce() {
	select {
	case s.localDue <- struct{}{}:
	default:
	}
}

// localLinks are this site's links as its record states them: one per neighbour,
// the cheapest session's cost, its measured RTT.
func (s *Site) localLinks() []routing.Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]routing.Link, 0, len(s.peers))
	for peer, pcs := range s.peers {
		best := cheapest(pcs)
		out = append(out, routing.Link{Peer: peer, Cost: best.cost, RTT: best.sess.RTT()})
	}
	return out
}

// OpenStream opens a stream along h's path: how the ingress reaches the
// first segment.
func (s *Site) OpenStream(ctx context.Context, h *forward.Header) (*link.Stream, error) {
	return forward.Open(ctx, forward.LinksFunc(s.session), h)
}

// handleStream serves a stream a neighbour opened: delivered here if this
// site is its last segment, else relayed to the next segment.
// peer is the neighbour it came from, as its link hello proved.
func (s *Site) handleStream(st *link.Stream, peer siteid.ID) {
	forward.Serve(s.ctx, s.id, st, forward.LinksFunc(s.session), s.tracer, func(st *link.Stream, h *forward.Header) { s.deliverStream(st, h, peer) })
}

// deliverStream hands a stream whose path ends here to the subsystem its
// kind names; a service stream must pass the address policy first.
func (s *Site) deliverStream(st *link.Stream, h *forward.Header, peer siteid.ID) {
	switch h.Kind {
	case forward.KindTCP:
		if s.admitStream(st, h, peer) {
			s.deliverSealed(st, h, peer, s.svc.ServeStream)
		}
	case forward.KindHTTP:
		if s.admitStream(st, h, peer) {
			s.deliverSealed(st, h, peer, s.svc.ServeHTTPStream)
		}
	case forward.KindHTTPFrame:
		if s.admitStream(st, h, peer) {
			s.deliverSealed(st, h, peer, s.svc.ServeHTTPFrameStream)
		}
	case forward.KindEvent:
		s.serveEventStream(st, h, peer)
	case forward.KindPacket:
		s.deliverPackets(st, h, peer)
	default:
		st.Reject(forward.RejectUnknownKind, fmt.Sprintf("stream kind %d is not served here", h.Kind))
	}
}

func poolFromPEM(pemText string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pemText)) {
		return nil, errors.New("no CA certificate in PEM")
	}
	return pool, nil
}
