package site

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/siteid"
)

// Link states that `weft link list` shows for an outbound link that is not up.
const (
	linkConnecting = "connecting"
	linkRevoked    = "revoked"
)

// dialer keeps one outbound link connected, with backoff between attempts,
// until it is stopped or the issuer refuses the link for good.
type dialer struct {
	cancel context.CancelFunc
	done   chan struct{}
	// up is closed once the first session is up (link create waits on it).
	up     chan struct{}
	upOnce sync.Once

	mu      sync.Mutex
	state   string // linkConnecting or linkRevoked while not up
	lastErr string // why the last attempt failed, or why the link was refused
}

func (d *dialer) status() (state, lastErr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state, d.lastErr
}

func (d *dialer) set(state, lastErr string) {
	d.mu.Lock()
	d.state, d.lastErr = state, lastErr
	d.mu.Unlock()
}

// markUp records that a session came up; the first closes up.
func (d *dialer) markUp() {
	d.upOnce.Do(func() { close(d.up) })
}

func (s *Site) startDialer(ol outboundLink) *dialer {
	ctx, cancel := context.WithCancel(s.ctx)
	d := &dialer{cancel: cancel, done: make(chan struct{}), up: make(chan struct{}), state: linkConnecting}
	s.mu.Lock()
	s.dialers[ol.Name] = d
	s.mu.Unlock()
	s.goFunc(func() {
		defer close(d.done)
		s.dialLoop(ctx, ol, d)
	})
	return d
}

func (s *Site) stopDialer(d *dialer) {
	d.cancel()
	<-d.done
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func (s *Site) dialLoop(ctx context.Context, ol outboundLink, d *dialer) {
	backoff := minBackoff
	for attempt := 0; ; attempt++ {
		// The link's credentials as saved now: a rotation replaces them
		// while the link is up, and the next session must use the new.
		if cur := s.outbound(ol.Name); cur != nil {
			ol = *cur
		}
		issuer, cfg, err := linkTLS(ol)
		if err != nil {
			d.set(linkConnecting, fmt.Sprintf("link credentials are damaged: %v; delete and re-create the link", err))
			return
		}
		c, err := dialAny(ctx, ol.Addresses, cfg)
		if err != nil {
			d.set(linkConnecting, err.Error())
			s.log.Debug("link dial failed", "link", ol.Name, "attempt", attempt, "err", err)
		} else {
			d.set(linkConnecting, "")
			pc := newPeerConn(issuer, ol.IssuerName, ol.Name, false)
			pc.onUp = d.markUp
			start := time.Now()
			if r := s.runSession(c, pc, ol.Cost); r != nil {
				s.log.Warn("link refused by its issuer for good; not dialing again", "link", ol.Name, "peer", ol.IssuerName, "reason", r.Reason, "detail", r.Message)
				s.saveRefusal(ol, r.Message)
				d.set(linkRevoked, r.Message)
				return
			}
			// Only a session that lasted resets the backoff: one that an
			// issuer closes at once must not make the dialer spin.
			if time.Since(start) > maxBackoff {
				backoff = minBackoff
			}
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

// outbound is the saved outbound link name, nil if there is none.
func (s *Site) outbound(name string) *outboundLink {
	for _, l := range s.state().Outbound {
		if l.Name == name {
			return &l
		}
	}
	return nil
}

// linkTLS is the TLS client config of an outbound link's credentials.
func linkTLS(ol outboundLink) (siteid.ID, *tls.Config, error) {
	cert, err := identity.X509KeyPair([]byte(ol.CertPEM), []byte(ol.KeyPEM))
	if err != nil {
		return siteid.ID{}, nil, err
	}
	issuer, err := siteid.Parse(ol.IssuerID)
	if err != nil {
		return siteid.ID{}, nil, err
	}
	pool, err := poolFromPEM(ol.CAPEM)
	if err != nil {
		return siteid.ID{}, nil, err
	}
	return issuer, identity.ClientTLSConfig(pool, issuer, &cert, identity.ALPNLink), nil
}

// saveRefusal records that the issuer refused a link's credential for
// good, so that a restarted site does not dial with it again. Only the
// refused credential is marked: a link re-created under the same name
// (link create replaces the old link first, then stops its dialer, whose
// last session may be this refusal) is not.
func (s *Site) saveRefusal(ol outboundLink, why string) {
	err := s.commit(func(st *state) error {
		for i := range st.Outbound {
			if st.Outbound[i].Name == ol.Name && st.Outbound[i].CertPEM == ol.CertPEM {
				st.Outbound[i].Refused = why
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("cannot save a link's refusal; it is dialed again after a restart", "link", ol.Name, "err", err)
	}
}

// dialTLS connects to addr and runs the TLS handshake over a
// link.BufferedConn (the link's transport, as serveLinkConn's).
func dialTLS(ctx context.Context, addr string, cfg *tls.Config) (*tls.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(link.NewBufferedConn(raw), cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// dialAny tries the issuer's addresses in turn.
func dialAny(ctx context.Context, addrs []string, cfg *tls.Config) (*tls.Conn, error) {
	var errs []error
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		c, err := dialTLS(dctx, a, cfg)
		cancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
	}
	return nil, errors.Join(errs...)
}
