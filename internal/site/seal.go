package site

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

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

// sealPrevFile keeps the seal key that the last rotation replaced, as
// sealKeyFile keeps the current one, and state.SealRotated the time of that
// rotation. Peers that still hold the record from before the rotation
// handshake with that key, and the ones that hold the record after it take
// this site's handshakes made with it: so for Options.SealKeyGrace after
// the rotation the site answers it, advertises it as previous in its
// record and, for Options.SealKeySwitch, handshakes with it, across
// restarts as while it runs; then the file goes.
const sealPrevFile = "seal.prev.key"

// sealCounters count service streams by end and protection
// (weft_seal_streams_total).
type sealCounters struct {
	openedSealed, openedDirect, servedSealed, servedDirect prometheus.Counter
}

// initSeal loads (or makes) the site's seal key, and the previous one while
// its grace lasts, advertises them in the site record with the feature of
// direct streams, and sets up both ends of sealing: service streams this
// site opens are sealed to their last segment unless it is also their
// first (serviceNet.OpenStream), and service streams delivered here must
// be sealed or come on their origin's own link (deliverSealed).
func (s *Site) initSeal() error {
	key, err := seal.LoadOrCreateKey(filepath.Join(s.opts.DataDir, sealKeyFile))
	if err != nil {
		return err
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_seal_refusals_total",
		Help: "Sealed streams refused at this site (as the egress), unsealed ones that did not come from their origin's own link, and sealed records that failed to open, by reason.",
	}, []string{"reason"})
	streams := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_seal_streams_total",
		Help: "Service streams this site opened (side=ingress) and served (side=egress), by protection: sealed end to end, or direct (on the link between the two sites, whose mutual TLS is end to end, with no seal).",
	}, []string{"side", "protection"})
	s.metrics.Registry.MustRegister(refused, streams)
	s.sealCount = sealCounters{
		openedSealed: streams.WithLabelValues("ingress", "sealed"), openedDirect: streams.WithLabelValues("ingress", "direct"),
		servedSealed: streams.WithLabelValues("egress", "sealed"), servedDirect: streams.WithLabelValues("egress", "direct"),
	}
	cfg := seal.Config{Self: s.id, Key: key, Logger: s.log, Refused: func(r string) { refused.WithLabelValues(r).Inc() },
		PrevPeerKey: func(id siteid.ID) ([seal.KeyLen]byte, bool) { return s.Table().PrevSealKey(id) }}
	in, out := cfg, cfg
	var prevPublic [seal.KeyLen]byte
	now := time.Now()
	prev, rotated, err := s.loadPrevSeal(key, now)
	if err != nil {
		return err
	}
	if !rotated.IsZero() {
		// The responder takes prev as the key key replaced.
		in.Key, prevPublic = prev, prev.Public
		if now.Before(rotated.Add(s.opts.SealKeySwitch)) {
			out.Key = prev
		}
	}
	s.sealOut, s.sealIn = seal.NewInitiator(out), seal.NewResponder(in)
	s.sealIn.SetKey(key)
	s.sealKey = key
	s.router.SetSealKey(key.Public, prevPublic)
	s.router.SetFeatures(routing.FeatureDirectStreams)
	return nil
}

// loadPrevSeal returns the previous seal key and the time it was replaced
// if its grace lasts at now (a zero time if not), and removes its file
// once it is over.
func (s *Site) loadPrevSeal(key seal.Key, now time.Time) (seal.Key, time.Time, error) {
	p := filepath.Join(s.opts.DataDir, sealPrevFile)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return seal.Key{}, time.Time{}, nil
	}
	rotated := s.state().SealRotated
	if rotated == nil || !now.Before(rotated.Add(s.opts.SealKeyGrace)) {
		return seal.Key{}, time.Time{}, removePrevSeal(p)
	}
	prev, err := seal.LoadOrCreateKey(p)
	if err != nil || prev == key {
		return seal.Key{}, time.Time{}, err
	}
	return prev, *rotated, nil
}

func removePrevSeal(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("previous seal key: %w", err)
	}
	return nil
}

// scheduleSealKeys moves this site's own handshakes to key, the seal key
// a rotation made at rotated, after Options.SealKeySwitch, and ends the
// grace of the key it replaced after Options.SealKeyGrace; either is
// skipped if another rotation replaced key by then.
func (s *Site) scheduleSealKeys(key seal.Key, rotated time.Time) {
	steps := []struct {
		at time.Time
		do func()
	}{
		{rotated.Add(s.opts.SealKeySwitch), func() { s.sealOut.SetKey(key) }},
		{rotated.Add(s.opts.SealKeyGrace), func() { s.expirePrevSeal() }},
	}
	s.goFunc(func() {
		for _, step := range steps {
			t := time.NewTimer(time.Until(step.at))
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			s.rotMu.Lock()
			if s.sealKey == key {
				step.do()
			}
			s.rotMu.Unlock()
		}
	})
}

// expirePrevSeal ends the grace of the previous seal key: handshakes made
// with it are refused, the record stops advertising it, and its file goes.
// The caller holds rotMu.
func (s *Site) expirePrevSeal() {
	s.sealIn.DropPrev()
	s.feedRouter(routerInput{kind: inputKeys, seal: s.sealKey.Public})
	if err := removePrevSeal(filepath.Join(s.opts.DataDir, sealPrevFile)); err != nil {
		s.log.Error("cannot remove the previous seal key, whose grace is over; it is no longer used", "err", err)
	}
	if err := s.commit(func(st *state) error { st.SealRotated = nil; return nil }); err != nil {
		s.log.Error("cannot save that the previous seal key's grace is over; it is no longer used", "err", err)
	}
	s.log.Info("the previous seal key's grace is over: handshakes made with it are refused")
}

// serviceNet is the site as its services see it: the streams they open
// are sealed end to end, but for direct ones.
type serviceNet struct{ s *Site }

var _ service.Network = serviceNet{}

func (n serviceNet) Table() *routing.Table { return n.s.Table() }

// OpenStream opens a stream along h's path, sealed to its last segment
// unless the stream is direct: its path is that one site, the peer of the
// link it goes on, whose mutual TLS (and hello) authenticates both sites
// to each other, so the link is already end to end; then only if that
// site's record says it takes direct streams, as no site built before
// them does.
func (n serviceNet) OpenStream(ctx context.Context, h *forward.Header) (net.Conn, error) {
	dst := h.Segments[len(h.Segments)-1]
	t := n.s.Table()
	if !sealStreams || len(h.Segments) == 1 && t.HasFeature(dst, routing.FeatureDirectStreams) {
		st, err := n.s.OpenStream(ctx, h)
		if err != nil {
			return nil, err
		}
		if sealStreams {
			n.s.sealCount.openedDirect.Inc()
		}
		return st, nil
	}
	key, ok := t.SealKey(dst)
	if !ok {
		return nil, &link.RejectError{Code: forward.RejectSeal, Message: fmt.Sprintf(
			"site %s advertises no seal key, so no stream to it can be sealed: it runs an older weft; upgrade it", dst)}
	}
	c, err := n.s.sealOut.Open(ctx, h, key, func(ctx context.Context, h *forward.Header) (seal.Stream, error) {
		st, err := n.s.OpenStream(ctx, h)
		if err != nil {
			return nil, err
		}
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	n.s.sealCount.openedSealed.Inc()
	return c, nil
}

// deliverSealed hands a service stream whose path ends here, which came on
// the link whose proven peer is peer, to serve once its origin is
// authenticated: by its seal, or, with no seal, by being that peer. A
// stream that fails is rejected, counted and logged by the seal.
func (s *Site) deliverSealed(st *link.Stream, h *forward.Header, peer siteid.ID, serve func(service.Stream, *forward.Header)) {
	switch {
	case !sealStreams:
		serve(st, h)
	case len(h.Seal) == 0:
		if s.sealIn.AcceptDirect(st, h, peer) == nil {
			s.sealCount.servedDirect.Inc()
			serve(st, h)
		}
	default:
		if c, err := s.sealIn.Accept(st, h, s.sealKeyOf); err == nil {
			s.sealCount.servedSealed.Inc()
			serve(c, h)
		}
	}
}

// sealKeyOf is the seal key site id advertises in its record.
func (s *Site) sealKeyOf(id siteid.ID) ([seal.KeyLen]byte, bool) {
	return s.Table().SealKey(id)
}
