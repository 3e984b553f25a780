package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"weft.dev/weft/internal/resource"
)

// HTTP versions to the target.
//
// A request keeps its HTTP version end to end: the ingress names the
// client's version in HeaderProto, the request crosses the mesh as
// HTTP/1.1 on a link stream (see http.go for why), and the connector site
// speaks to the target in the client's version again. A connector whose
// target speaks only one version says so with TargetProtocol; with the
// default, auto, the connector probes the target once (an HTTP/2 preface,
// then an HTTP/1.1 OPTIONS) and falls back to the version the target
// speaks when it does not speak the client's. Over TLS, ALPN decides.

// HeaderProto carries the client's HTTP version from the ingress to the
// connector site: "h2" or "http1". The connector removes it.
const HeaderProto = "Weft-Proto"

// clientProto is the HeaderProto value for a request as the ingress got it.
func clientProto(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "h2"
	}
	return "http1"
}

// targetTransport is an http connector's pool of connections to its
// target, in both HTTP versions.
type targetTransport struct {
	target string
	mode   string // resource.TargetProtocol*
	scheme string // http or https
	h1, h2 *http.Transport
	lean   *h1Client // HTTP/1.1 without upgrades to a plain-text target
	tls    bool
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)

	err error // why the target cannot be used (its TLS configuration)

	now          func() time.Time
	probeTimeout time.Duration

	mu     sync.Mutex
	probed struct{ h1, h2 probed } // what probes found
}

// probed is what probes found of one HTTP version.
type probed struct {
	speaks speaks
	// A probe the target accepted but did not answer in time says nothing
	// of its version (it may be busy starting): none is tried again
	// before this, so that a target that never answers one does not hold
	// every request up for a probe.
	retryAt time.Time
}

// newTargetTransport returns the pools to an http connector's target. A
// connector whose TLS configuration cannot be loaded gets a transport that
// fails every request with the reason.
func (m *Manager) newTargetTransport(s resource.ConnectorSpec) *targetTransport {
	d := &net.Dialer{Timeout: m.cfg.ConnectTimeout}
	t := &targetTransport{target: s.Target, mode: s.TargetProtocol, scheme: "http", dial: d.DialContext, tls: s.TargetTLS,
		now: m.cfg.Clock.Now, probeTimeout: probeTimeout}
	var tc *tls.Config
	if s.TargetTLS {
		var err error
		if tc, err = targetTLSConfig(s); err != nil {
			m.cfg.Logger.Error("connector cannot reach its target", "address", s.Address, "err", err)
			t.err = err
			return t
		}
		t.scheme = "https"
	}
	mk := func(p func(*http.Protocols)) *http.Transport {
		var protos http.Protocols
		p(&protos)
		return &http.Transport{
			DialContext: d.DialContext,
			// Requests beyond MaxConnections wait here for a connection:
			// they are Istio's pending requests, bounded by MaxPending in
			// the Picker.
			MaxConnsPerHost:     int(s.MaxConnections),
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			TLSClientConfig:     tc,
			Protocols:           &protos,
		}
	}
	switch {
	case s.TargetTLS && s.TargetProtocol == resource.TargetProtocolAuto:
		// One pool; ALPN picks per connection.
		t.h1 = mk(func(p *http.Protocols) { p.SetHTTP1(true); p.SetHTTP2(true) })
		t.h2 = t.h1
	case s.TargetTLS:
		t.h1 = mk(func(p *http.Protocols) { p.SetHTTP1(true) })
		t.h2 = mk(func(p *http.Protocols) { p.SetHTTP2(true) })
	default:
		t.h1 = mk(func(p *http.Protocols) { p.SetHTTP1(true) })
		t.h2 = mk(func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) })
		// Its connections count apart from h1's, which now carries only
		// upgraded ones (WebSocket), as h2's always did.
		t.lean = &h1Client{target: s.Target, dial: d.DialContext, now: m.cfg.Clock.Now, max: int(s.MaxConnections)}
	}
	return t
}

// targetTLSConfig is the TLS client configuration of s's target.
func targetTLSConfig(s resource.ConnectorSpec) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(s.Target)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if s.TargetServerName != "" {
		tc.ServerName = s.TargetServerName
	}
	if s.TargetCA != "" {
		pem, err := os.ReadFile(s.TargetCA)
		if err != nil {
			return nil, fmt.Errorf("connector %s: target CA: %w", s.Address, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("connector %s: target CA %s holds no PEM certificate", s.Address, s.TargetCA)
		}
	}
	return tc, nil
}

// transports returns every pool, for closing idle connections.
func (t *targetTransport) transports() []idleCloser {
	switch {
	case t == nil || t.h1 == nil:
		return nil
	case t.h1 == t.h2:
		return []idleCloser{t.h1}
	case t.lean != nil:
		return []idleCloser{t.h1, t.h2, t.lean}
	}
	return []idleCloser{t.h1, t.h2}
}

// RoundTrip sends req to the target in the version the client used
// (proto, a HeaderProto value) unless the connector or the target says
// otherwise.
func (t *targetTransport) RoundTrip(req *http.Request, proto string) (*http.Response, error) {
	if t.err != nil {
		return nil, t.err
	}
	req.URL.Scheme, req.URL.Host = t.scheme, t.target
	h2 := proto == "h2"
	switch t.mode {
	case resource.TargetProtocolHTTP1:
		h2 = false
	case resource.TargetProtocolH2C:
		h2 = true
	default:
		if !t.tls {
			h2 = t.choose(req.Context(), h2)
		}
	}
	if h2 {
		return t.h2.RoundTrip(req)
	}
	if _, up := req.Header["Upgrade"]; !up && t.lean != nil {
		return t.lean.RoundTrip(req)
	}
	return t.h1.RoundTrip(req)
}

// choose returns whether to speak HTTP/2 to the target when the client
// wants h2: the client's version unless the target was found not to
// speak it. Only the client's version is probed, once and remembered, so
// an HTTP/1.1-only target sees an OPTIONS * and no HTTP/2 preface while
// its clients speak HTTP/1.1. A probe that could not connect is tried
// again with the next request, one that got no answer in time after
// probeRetry; meanwhile requests keep the client's version.
func (t *targetTransport) choose(ctx context.Context, h2 bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, p := &t.probed.h1, probeHTTP1
	if h2 {
		v, p = &t.probed.h2, probeH2C
	}
	if v.speaks == speaksUnknown {
		if t.now().Before(v.retryAt) {
			return h2
		}
		// Under the lock, so that the requests that arrive meanwhile wait
		// for the one probe instead of racing their own.
		ok, err := probe(ctx, t.dial, t.target, p, t.probeTimeout)
		if errors.Is(err, errNoAnswer) {
			v.retryAt = t.now().Add(probeRetry)
		}
		if err != nil {
			return h2
		}
		v.speaks = speaksNo
		if ok {
			v.speaks = speaksYes
		}
	}
	if v.speaks == speaksNo {
		return !h2
	}
	return h2
}

type speaks uint8

const (
	speaksUnknown speaks = iota
	speaksYes
	speaksNo
)

// Probes of what a target speaks: what to send, and how an answer in the
// probed version starts.
var (
	probeHTTP1 = probeSpec{
		send:   []byte("OPTIONS * HTTP/1.1\r\nHost: weft-probe\r\nConnection: close\r\n\r\n"),
		answer: func(b []byte) bool { return bytes.HasPrefix(b, []byte("HTTP/1.")) },
	}
	// The HTTP/2 client preface and an empty SETTINGS frame; a server that
	// speaks h2c answers with its own SETTINGS frame (type 4 on stream 0).
	probeH2C = probeSpec{
		send: []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
		answer: func(b []byte) bool {
			return len(b) >= 9 && b[3] == 0x4 && b[5]|b[6]|b[7]|b[8] == 0
		},
	}
)

type probeSpec struct {
	send   []byte
	answer func(first []byte) bool
}

const (
	// probeTimeout bounds one probe's wait for the target's first bytes.
	probeTimeout = 2 * time.Second
	// probeRetry is how long a target that did not answer a probe in time
	// goes unprobed.
	probeRetry = 30 * time.Second
)

// errNoAnswer is a probe's error when the target took the connection but
// did not answer within the probe's time.
var errNoAnswer = errors.New("the target did not answer the probe in time")

// probe reports whether target answers p in p's version. An error means
// the target could not be reached or did not answer in time (errNoAnswer),
// which says nothing about its version; a target that closes or answers
// otherwise does not speak it.
func probe(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), target string, p probeSpec, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := dial(ctx, "tcp", target)
	if err != nil {
		return false, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if _, err := c.Write(p.send); err != nil {
		return false, nil
	}
	first := make([]byte, 9)
	n, err := io.ReadFull(c, first)
	if ok := p.answer(first[:n]); ok || !errors.Is(err, os.ErrDeadlineExceeded) {
		return ok, nil
	}
	return false, errNoAnswer
}

// listenerTLS is the TLS configuration of an HTTPS listener, nil for a
// plain one. ALPN offers h2 and http/1.1; the client's choice is the
// version that goes on to the target.
func listenerTLS(s resource.ListenerSpec) (*tls.Config, error) {
	if s.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}, nil
}

// sameTarget reports whether a and b reach their target alike, so that
// the pooled connections of a serve b.
func sameTarget(a, b resource.ConnectorSpec) bool {
	return a.Target == b.Target && a.MaxConnections == b.MaxConnections && a.TargetProtocol == b.TargetProtocol &&
		a.TargetTLS == b.TargetTLS && a.TargetCA == b.TargetCA && a.TargetServerName == b.TargetServerName
}
