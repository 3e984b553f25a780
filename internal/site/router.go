package site

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/service"
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
		sess := s.session(identity.SiteID(m.To))
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
		out = append(out, routing.Link{Peer: routing.SiteID(peer), Cost: best.cost, RTT: best.sess.RTT()})
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

func (s *Site) neighborUp(peer identity.SiteID) {
	s.routerDo(func(r *routing.Router) {
		r.NeighborUp(routing.SiteID(peer))
		s.setLocal(r)
	})
}

func (s *Site) neighborDown(peer identity.SiteID) {
	s.routerDo(func(r *routing.Router) {
		r.NeighborDown(routing.SiteID(peer))
		s.setLocal(r)
	})
}

func (s *Site) receiveRecord(pc *peerConn, b []byte) error {
	var rec routing.Record
	if err := rec.UnmarshalBinary(b); err != nil {
		return err
	}
	s.routerDo(func(r *routing.Router) { r.Step(routing.SiteID(pc.peer), rec) })
	return nil
}

// OpenStream opens a stream through the link to h.Segments[h.Next]. It is how
// both the ingress and transit sites move a stream one hop along its path.
func (s *Site) OpenStream(ctx context.Context, h *link.Header) (*link.Stream, error) {
	next := identity.SiteID(h.Segments[h.Next])
	sess := s.session(next)
	if sess == nil {
		return nil, &link.RejectError{Code: service.RejectNoRoute, Message: fmt.Sprintf("site %s has no link to %s", s.st.Name, next)}
	}
	b, err := h.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return sess.Open(ctx, b)
}

// handleStream serves a stream a neighbour opened: delivered here if this site is
// its last segment, else forwarded to the next segment without a table lookup.
func (s *Site) handleStream(st *link.Stream) {
	var h link.Header
	if err := h.UnmarshalBinary(st.Header()); err != nil {
		st.Reject(service.RejectNoRoute, "malformed stream header: "+err.Error())
		return
	}
	if identity.SiteID(h.Segments[h.Next]) != s.id {
		st.Reject(service.RejectNoRoute, "stream misrouted: this site is not its next segment")
		return
	}
	if int(h.Next) == len(h.Segments)-1 {
		switch h.Kind {
		case link.KindTCP:
			s.svc.ServeStream(st, &h)
		case link.KindHTTP:
			s.svc.ServeHTTPStream(st, &h)
		case link.KindEvent:
			s.serveEventStream(st, &h)
		default:
			st.Reject(service.RejectNoConnector, fmt.Sprintf("stream kind %d is not served here", h.Kind))
		}
		return
	}
	h.Next++
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	out, err := s.OpenStream(ctx, &h)
	cancel()
	if err != nil {
		var rej *link.RejectError
		if errors.As(err, &rej) {
			st.Reject(rej.Code, rej.Message)
		} else {
			st.Reject(service.RejectNoRoute, err.Error())
		}
		return
	}
	if err := st.Confirm(); err != nil {
		out.Reset(0)
		return
	}
	service.Join(st, out)
}

func poolFromPEM(pemText string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pemText)) {
		return nil, errors.New("no CA certificate in PEM")
	}
	return pool, nil
}
