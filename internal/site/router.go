package site

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// routerDo runs one input through the router, then sends what it produced. The
// router's outbox is drained under rmu but sent outside it: sends may block on a
// slow link, and records carry sequence numbers, so a reordering is harmless.
func (s *Site) routerDo(step func(r *routing.Router)) {
	s.rmu.Lock()
	step(s.router)
	rd := s.router.Ready()
	s.router.Advance()
	if rd.TableChanged {
		t := s.router.Table()
		s.table.Store(t)
		s.metrics.RoutingSites.Set(float64(len(t.Sites())))
	}
	s.rmu.Unlock()
	if rd.TableChanged && s.events != nil {
		s.events.TableChanged()
	}
	for _, m := range rd.Messages {
		sess := s.session(m.To)
		if sess == nil {
			continue // the neighbour left; it gets the whole database when it is back
		}
		b, err := m.Record.MarshalBinary()
		if err != nil {
			s.log.Error("cannot encode site record", "err", err)
			continue
		}
		if err := sess.SendControl(append([]byte{ctlRecord}, b...)); err == nil {
			s.metrics.RecordsFlooded.Inc()
		}
	}
}

// localLinks are this site's links as its record states them: one per neighbour,
// the cheapest session's cost, its measured RTT.
func (s *Site) localLinks() []routing.Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]routing.Link, 0, len(s.peers))
	for peer, pcs := range s.peers {
		best := pcs[0]
		for _, pc := range pcs[1:] {
			if pc.cost < best.cost {
				best = pc
			}
		}
		out = append(out, routing.Link{Peer: peer, Cost: best.cost, RTT: best.sess.RTT()})
	}
	return out
}

// announce originates a new site record from the current links and connectors.
func (s *Site) announce() { s.routerDo(s.setLocal) }

// setLocal gives the router this site's links, connectors and interests. It
// runs under rmu, reading them there: read before, two concurrent
// announcements could reach the router in the other order, and the later
// state (a link just up) be overwritten by the earlier one until the next
// change, leaving the network without this site's link.
func (s *Site) setLocal(r *routing.Router) {
	r.SetLocal(s.localLinks(), s.svc.Advertised(), s.eventInterests())
}

func (s *Site) neighborUp(peer siteid.ID) {
	s.routerDo(func(r *routing.Router) {
		r.NeighborUp(peer)
		s.setLocal(r)
	})
}

func (s *Site) neighborDown(peer siteid.ID) {
	s.routerDo(func(r *routing.Router) {
		r.NeighborDown(peer)
		s.setLocal(r)
	})
}

func (s *Site) receiveRecord(pc *peerConn, b []byte) error {
	var rec routing.Record
	if err := rec.UnmarshalBinary(b); err != nil {
		return err
	}
	s.routerDo(func(r *routing.Router) { r.Step(pc.peer, rec) })
	return nil
}

// OpenStream opens a stream along h's path: how the ingress reaches the
// first segment.
func (s *Site) OpenStream(ctx context.Context, h *forward.Header) (*link.Stream, error) {
	return forward.Open(ctx, forward.LinksFunc(s.session), h)
}

// handleStream serves a stream a neighbour opened: delivered here if this
// site is its last segment, else relayed to the next segment.
func (s *Site) handleStream(st *link.Stream) {
	forward.Serve(s.ctx, s.id, st, forward.LinksFunc(s.session), s.deliverStream)
}

// deliverStream hands a stream whose path ends here to the subsystem its
// kind names.
func (s *Site) deliverStream(st *link.Stream, h *forward.Header) {
	switch h.Kind {
	case forward.KindTCP:
		s.svc.ServeStream(st, h)
	case forward.KindHTTP:
		s.svc.ServeHTTPStream(st, h)
	case forward.KindEvent:
		s.serveEventStream(st, h)
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
