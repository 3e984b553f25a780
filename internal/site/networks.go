package site

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/service"
	"weft.dev/weft/internal/siteid"
	"weft.dev/weft/internal/vl3"
)

// initNetworks loads the site's vL3 networks; Run brings their attachments
// up.
func (s *Site) initNetworks() error {
	m, err := vl3.NewManager(vl3.Config{Self: s.id, Dir: s.opts.DataDir, Open: s.openPacketStream,
		Announce: s.announce, Logger: s.log, Registry: s.metrics.Registry})
	s.vl3 = m
	return err
}

// openPacketStream opens a packet stream of network to dst along the
// table's path, sealed end to end (unless direct) like a service stream.
func (s *Site) openPacketStream(ctx context.Context, network string, dst siteid.ID) (net.Conn, error) {
	r, ok := s.Table().Route(dst)
	if !ok || len(r.Path) == 0 {
		return nil, fmt.Errorf("no path to site %s", dst)
	}
	h := forward.NewHeader(forward.KindPacket, vl3.NetworkAddress(network), s.id, r.Path)
	return serviceNet{s}.OpenStream(ctx, h)
}

// deliverPackets serves a packet stream whose path ends here, once the
// address policy admits the network and the seal (or, on a direct stream,
// the link) authenticates its origin.
func (s *Site) deliverPackets(st *link.Stream, h *forward.Header, peer siteid.ID) {
	network, ok := vl3.NetworkName(h.Address)
	if !ok {
		st.Reject(forward.RejectNoConnector, fmt.Sprintf("%q is not a network", h.Address))
		return
	}
	if s.admitStream(st, h, peer) {
		s.deliverSealed(st, h, peer, func(c service.Stream, h *forward.Header) { s.vl3.ServeStream(c, network, h.Origin) })
	}
}

// networkAnnouncements are the networks and attachment names that t's
// sites announce; one that does not parse is logged (its site signed it)
// and left out.
func (s *Site) networkAnnouncements(t *routing.Table) (anns []vl3.Announcement, hosts []vl3.Host) {
	recs := t.Records()
	for i := range recs {
		for _, c := range recs[i].Connectors {
			a, isNet, err := vl3.ParseAnnouncement(recs[i].Site, c.Address, c.Protocol, c.Capacity)
			h, isHost, herr := vl3.ParseHost(c.Address, c.Protocol)
			switch {
			case err != nil || herr != nil:
				s.log.Warn("a site announces a network or attachment that does not parse: ignored", "peer", recs[i].Name, "err", errors.Join(err, herr))
			case isNet:
				anns = append(anns, a)
			case isHost:
				hosts = append(hosts, h)
			}
		}
	}
	return anns, hosts
}

// networksChanged gives the vL3 manager the table's networks. routerLoop
// calls it.
func (s *Site) networksChanged(t *routing.Table) {
	for _, c := range s.vl3.TableChanged(s.networkAnnouncements(t)) {
		s.log.Warn("vL3 announcements conflict; the lower site ID wins", "conflict", c)
	}
}

// advertisedNetworks are the connectors that announce this site's networks.
func (s *Site) advertisedNetworks() []routing.Connector {
	var out []routing.Connector
	for _, a := range s.vl3.Advertised() {
		addr, proto, capacity := a.Connector()
		out = append(out, routing.Connector{Address: addr, Protocol: proto, Capacity: capacity})
	}
	for _, h := range s.vl3.AdvertisedHosts() {
		addr, proto := h.Connector()
		out = append(out, routing.Connector{Address: addr, Protocol: proto})
	}
	return out
}

func networkError(err error) error {
	for _, e := range []struct {
		err  error
		code string
	}{
		{vl3.ErrInvalid, apitype.CodeInvalid}, {vl3.ErrNotFound, apitype.CodeNotFound},
		{vl3.ErrConflict, apitype.CodeNameInUse}, {vl3.ErrExhausted, apitype.CodeLimitReached},
	} {
		if errors.Is(err, e.err) {
			return &apiError{Code: e.code, Message: err.Error()}
		}
	}
	return err
}

func (s *Site) networkRoutes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"GET /v1/networks": func(w http.ResponseWriter, r *http.Request) (any, error) { return list(s.vl3.List()), nil },
		"PUT /v1/networks/{name}": func(w http.ResponseWriter, r *http.Request) (any, error) {
			var n vl3.Network
			if err := decodeBody(r, &n); err != nil {
				return nil, err
			}
			n.Name = r.PathValue("name")
			return nil, networkError(s.vl3.Create(n))
		},
		"DELETE /v1/networks/{name}": func(w http.ResponseWriter, r *http.Request) (any, error) {
			return nil, networkError(s.vl3.Delete(r.PathValue("name")))
		},
		"POST /v1/networks/{name}/attachments": func(w http.ResponseWriter, r *http.Request) (any, error) {
			var b apitype.NetworkAttach
			if err := decodeBody(r, &b); err != nil {
				return nil, err
			}
			a, err := s.vl3.Attach(r.PathValue("name"), vl3.Attachment{Name: b.Name, Netns: b.Netns, IP: b.IP, DNS: b.DNS}, b.MTU)
			return a, networkError(err)
		},
		"DELETE /v1/networks/{name}/attachments/{netns}": func(w http.ResponseWriter, r *http.Request) (any, error) {
			return nil, networkError(s.vl3.Detach(r.PathValue("name"), r.PathValue("netns")))
		},
	}
}

// applyNetwork is apply's step for a Network.
func (s *Site) applyNetwork(n *resource.Network) (name, result string, err error) {
	cidr, err := netip.ParsePrefix(n.Spec.CIDR)
	if err != nil {
		return n.Name, "", errInvalid(err)
	}
	i := slices.IndexFunc(s.vl3.List(), func(o vl3.Network) bool { return o.Name == n.Name })
	if i >= 0 {
		old := s.vl3.List()[i]
		if old.CIDR == cidr && old.MTU == n.Spec.MTU {
			return n.Name, apitype.ApplyUnchanged, nil
		}
	}
	return n.Name, createdOr(i >= 0), networkError(s.vl3.Create(vl3.Network{Name: n.Name, CIDR: cidr, MTU: n.Spec.MTU}))
}

// applyNetworkAttachment is apply's step for a NetworkAttachment: an
// attachment of the namespace that exists already is left as it is.
func (s *Site) applyNetworkAttachment(a *resource.NetworkAttachment) (name, result string, err error) {
	for _, n := range s.vl3.List() {
		if n.Name == a.Spec.Network && slices.ContainsFunc(n.Attachments, func(o vl3.Attachment) bool { return o.Netns == a.Spec.Netns }) {
			return a.Name, apitype.ApplyUnchanged, nil
		}
	}
	var ip netip.Addr
	if a.Spec.IP != "" {
		if ip, err = netip.ParseAddr(a.Spec.IP); err != nil {
			return a.Name, "", errInvalid(err)
		}
	}
	_, err = s.vl3.Attach(a.Spec.Network, vl3.Attachment{Name: a.Name, Netns: a.Spec.Netns, IP: ip, DNS: a.Spec.DNS}, 0)
	return a.Name, apitype.ApplyCreated, networkError(err)
}
