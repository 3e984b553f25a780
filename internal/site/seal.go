package site

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/seal"
	"weft.dev/weft/internal/service"
	"weft.dev/weft/internal/siteid"
)

// sealKeyFile keeps the site's static key for end-to-end sealing, beside
// its CA key.
const sealKeyFile = "seal.key"

// initSeal loads (or makes) the site's seal key, advertises it in the site
// record and sets up both ends of sealing: service streams this site opens
// are sealed to their last segment, and service streams delivered here
// must be.
func (s *Site) initSeal() error {
	key, err := seal.LoadOrCreateKey(filepath.Join(s.opts.DataDir, sealKeyFile))
	if err != nil {
		return err
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_seal_refusals_total",
		Help: "Sealed streams refused at this site (as the egress) and sealed records that failed to open, by reason.",
	}, []string{"reason"})
	s.metrics.Registry.MustRegister(refused)
	cfg := seal.Config{Self: s.id, Key: key, Logger: s.log, Refused: func(r string) { refused.WithLabelValues(r).Inc() },
		PrevPeerKey: func(id siteid.ID) ([seal.KeyLen]byte, bool) { return s.Table().PrevSealKey(id) }}
	s.sealOut, s.sealIn = seal.NewInitiator(cfg), seal.NewResponder(cfg)
	s.sealKey = key
	s.router.SetSealKey(key.Public, [seal.KeyLen]byte{})
	return nil
}

// serviceNet is the site as its services see it: the streams they open
// are sealed end to end.
type serviceNet struct{ s *Site }

var _ service.Network = serviceNet{}

func (n serviceNet) Table() *routing.Table { return n.s.Table() }

func (n serviceNet) OpenStream(ctx context.Context, h *forward.Header) (net.Conn, error) {
	if !sealStreams {
		st, err := n.s.OpenStream(ctx, h)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	dst := h.Segments[len(h.Segments)-1]
	key, ok := n.s.Table().SealKey(dst)
	if !ok {
		return nil, &link.RejectError{Code: forward.RejectSeal, Message: fmt.Sprintf(
			"site %s advertises no seal key, so no stream to it can be sealed: it runs an older weft; upgrade it", dst)}
	}
	return n.s.sealOut.Open(ctx, h, key, func(ctx context.Context, h *forward.Header) (seal.Stream, error) {
		st, err := n.s.OpenStream(ctx, h)
		if err != nil {
			return nil, err
		}
		return st, nil
	})
}

// deliverSealed hands a service stream whose path ends here to serve once
// its seal authenticates it; a stream that fails is rejected, counted and
// logged by the seal.
func (s *Site) deliverSealed(st *link.Stream, h *forward.Header, serve func(service.Stream, *forward.Header)) {
	if !sealStreams {
		serve(st, h)
		return
	}
	c, err := s.sealIn.Accept(st, h, s.sealKeyOf)
	if err != nil {
		return
	}
	serve(c, h)
}

// sealKeyOf is the seal key site id advertises in its record.
func (s *Site) sealKeyOf(id siteid.ID) ([seal.KeyLen]byte, bool) {
	return s.Table().SealKey(id)
}
