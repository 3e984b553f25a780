package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// HTTP at the ingress.
//
// A listener with protocol http is an http.Server speaking HTTP/1.1 and h2c
// with prior knowledge (net/http's own HTTP/2, the bundled x/net/http2, so
// no h2c wrapper is needed) in front of an httputil.ReverseProxy, whose
// Transport is the ingress: it balances each request through the address's
// balance.Picker, retries, hedges and overflows. ReverseProxy already does
// what a proxy must (hop-by-hop headers, upgrades such as WebSocket by
// hijacking, trailers, flushing of streamed answers).
//
// Between sites each request travels as HTTP/1.1 on a link stream of kind
// KindHTTP, and those streams are pooled and reused (keep-alive) by one
// http.Transport per path. HTTP/1.1 rather than h2 on the stream, because
// the link already multiplexes streams with per-stream flow control: h2
// inside it would add a second, nested flow-control window (the
// head-of-line and window-tuning trouble of TCP-over-TCP, one level up) to
// buy nothing. A stream per request in flight also makes cancelling one
// request exactly closing one stream, which the connector site sees as the
// client going away and passes to the target as a cancelled request; and
// an upgraded request simply keeps its stream as the tunnel. The price is
// one stream open (a link round trip) whenever the pool has no idle stream.

// maxReplayBody bounds the request body kept to send a request again (a
// retry or the second copy of a hedge); larger bodies are streamed once.
const maxReplayBody = 64 << 10

// errNoCandidate is the error when no connector could take a request.
var errNoCandidate = errors.New("no connector could take the request")

// httpState is the HTTP part of a Manager, guarded by Manager.mu.
type httpState struct {
	ingress   map[string]*balance.Picker // per address, across sites
	instances map[string]*balance.Picker // per address, this site's connectors
	latency   map[string]*quantileWindow // per address, for hedge auto
	remotes   map[string]*http.Transport // per path, pooled link streams
	targets   map[string]*http.Transport // per connector, pooled target conns
	targetOf  map[string]string          // per connector, the target of targets
	server    *http.Server               // serves KindHTTP streams
	streams   *streamListener
}

func newHTTPState() *httpState {
	return &httpState{
		ingress:   map[string]*balance.Picker{},
		instances: map[string]*balance.Picker{},
		latency:   map[string]*quantileWindow{},
		remotes:   map[string]*http.Transport{},
		targets:   map[string]*http.Transport{},
		targetOf:  map[string]string{},
	}
}

// serveHTTP runs an HTTP listener until its net.Listener is closed.
// Requests in flight and upgraded connections go on after that, as TCP
// connections of a deleted listener do.
func (m *Manager) serveHTTP(l *listener) {
	defer close(l.done)
	pol, err := parseHedge(l.spec.Spec.Hedge)
	if err != nil { // Default validated it; only a hand-made spec gets here
		m.cfg.Logger.Error("listener stopped", "listener", l.spec.Name, "err", err)
		l.ln.Close()
		return
	}
	in := &ingress{m: m, address: l.spec.Spec.Address, hedge: pol, retries: resource.DefaultRetries}
	if r := l.spec.Spec.Retries; r != nil {
		in.retries = int(*r)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	by := prometheus.Labels{"address": in.address}
	handler := promhttp.InstrumentHandlerDuration(m.cfg.Metrics.HTTPDuration.MustCurryWith(by),
		promhttp.InstrumentHandlerCounter(m.cfg.Metrics.HTTPRequests.MustCurryWith(by), in.proxy()))
	srv := &http.Server{
		Handler:           handler,
		Protocols:         &protos,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.cfg.Logger.Handler(), slog.LevelDebug),
	}
	if err := srv.Serve(l.ln); err != nil && !errors.Is(err, net.ErrClosed) {
		m.cfg.Logger.Error("listener stopped", "listener", l.spec.Name, "err", err)
	}
}

// ingress is the http.RoundTripper of one HTTP listener.
type ingress struct {
	m       *Manager
	address string
	hedge   hedgePolicy
	retries int
}

func (in *ingress) proxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", in.address
			r.SetXForwarded()
			ensureTraceparent(r.Out.Header)
		},
		Transport: in,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			code := http.StatusBadGateway
			if errors.Is(err, errNoCandidate) {
				code = http.StatusServiceUnavailable
			}
			if r.Context().Err() == nil {
				in.m.cfg.Logger.Debug("http request failed", "address", in.address, "err", err)
			}
			http.Error(w, err.Error(), code)
		},
		ErrorLog: slog.NewLogLogger(in.m.cfg.Logger.Handler(), slog.LevelDebug),
	}
}

// target is one candidate of a request, with what is needed to reach it.
type target struct {
	key  balance.Key
	cand routing.Candidate
}

// plan is the candidates of one request, built once per request.
type plan struct {
	bcands []balance.Candidate
	byKey  map[balance.Key]routing.Candidate
}

// httpPlan returns the candidates serving address over HTTP. This site's
// own candidate carries its connectors' limits, so the Picker sees it
// saturated without asking; remote sites answer for their own limits.
func (m *Manager) httpPlan(address string) plan {
	cands := m.cfg.Net.Table().Candidates(address)
	p := plan{byKey: make(map[balance.Key]routing.Candidate, len(cands))}
	m.mu.Lock()
	local := m.localLimitsLocked(address, resource.ProtocolHTTP)
	m.mu.Unlock()
	for _, c := range cands {
		if c.Protocol != resource.ProtocolHTTP {
			continue
		}
		k := balance.Key(c.Site.String())
		bc := balance.Candidate{Key: k, Cost: c.Cost, Capacity: c.Capacity}
		if c.Site == m.cfg.Self {
			bc.Limits = local
		}
		p.bcands = append(p.bcands, bc)
		p.byKey[k] = c
	}
	return p
}

// localLimitsLocked adds up the limits of this site's connectors for
// address (of protocol proto, or any when empty): the site is saturated
// when all of them are. One connector without a limit makes it unlimited.
func (m *Manager) localLimitsLocked(address, proto string) balance.Limits {
	var sum balance.Limits
	unlimited := [3]bool{}
	any := false
	for _, c := range m.connectors {
		s := c.spec.Spec
		if s.Address != address || (proto != "" && s.Protocol != proto) {
			continue
		}
		any = true
		for i, v := range []uint32{s.MaxConnections, s.MaxPending, s.MaxRequests} {
			if v == 0 {
				unlimited[i] = true
			}
		}
		sum.MaxConnections += s.MaxConnections
		sum.MaxPending += s.MaxPending
		sum.MaxRequests += s.MaxRequests
	}
	if !any {
		return balance.Limits{}
	}
	if unlimited[0] {
		sum.MaxConnections = 0
	}
	if unlimited[1] {
		sum.MaxPending = 0
	}
	if unlimited[2] {
		sum.MaxRequests = 0
	}
	return sum
}

// outlierConfig is the Picker configuration the connectors of address ask
// for. Outlier settings live on connectors (like a DestinationRule on its
// host) but are not flooded, so a site applies those of its own
// connectors for the address, the first by name, and Istio's defaults
// when it has none.
func (m *Manager) outlierConfigLocked(address string) balance.Config {
	var names []string
	for n, c := range m.connectors {
		if c.spec.Spec.Address == address && c.spec.Spec.Protocol == resource.ProtocolHTTP {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return balance.DefaultConfig()
	}
	sort.Strings(names)
	o := m.connectors[names[0]].spec.Spec.Outlier
	cfg := balance.DefaultConfig()
	cfg.Outlier.ConsecutiveErrors = o.ConsecutiveErrors
	cfg.Outlier.Interval = o.Interval.Duration
	cfg.Outlier.BaseEjection = o.BaseEjection.Duration
	cfg.Outlier.MaxEjectionPercent = o.MaxEjectionPercent
	cfg.Outlier.MaxEjection = max(cfg.Outlier.MaxEjection, cfg.Outlier.BaseEjection)
	return cfg
}

// configuredPickerLocked returns pickers[address], replaced by a fresh one
// when the connectors now ask for another configuration.
func (m *Manager) configuredPickerLocked(pickers map[string]*balance.Picker, address string) *balance.Picker {
	cfg := m.outlierConfigLocked(address)
	p := pickers[address]
	if p == nil || p.Config() != cfg {
		p = balance.NewPicker(cfg, m.cfg.Rand)
		pickers[address] = p
	}
	return p
}

// pickStart chooses a candidate not in tried and counts a request on it.
func (in *ingress) pickStart(p plan, tried map[balance.Key]bool) (target, bool) {
	m := in.m
	m.mu.Lock()
	defer m.mu.Unlock()
	pk := m.configuredPickerLocked(m.http.ingress, in.address)
	// Sites that stopped serving the address must not count towards the
	// ejection cap any more.
	pk.Forget(func(k balance.Key) bool { _, ok := p.byKey[k]; return ok })
	k, ok := pk.Pick(m.cfg.Clock.Now(), p.bcands, func(k balance.Key) bool { return tried[k] })
	if !ok {
		return target{}, false
	}
	pk.Start(k, balance.Request)
	tried[k] = true
	return target{key: k, cand: p.byKey[k]}, true
}

// done ends a request counted by pickStart. Good answers also feed the
// address's latency window for hedge auto.
func (in *ingress) done(k balance.Key, latency time.Duration, o balance.Outcome) {
	m := in.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if pk := m.http.ingress[in.address]; pk != nil {
		pk.Done(m.cfg.Clock.Now(), k, balance.Request, latency, o)
	}
	if latency > 0 && (o == balance.Success || o == balance.ClientError || o == balance.Cancelled) {
		// Cancelled hedge losers enter with the time they had run: a lower
		// bound, but leaving them out would hide exactly the slow tail.
		w := m.http.latency[in.address]
		if w == nil {
			w = &quantileWindow{}
			m.http.latency[in.address] = w
		}
		w.add(latency)
	}
}

func (in *ingress) p95() (time.Duration, bool) {
	m := in.m
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.http.latency[in.address]
	if w == nil {
		return 0, false
	}
	return w.quantile(0.95)
}

// RoundTrip sends one request to a candidate, with retries, overflow and,
// when the listener asks for it, a hedge copy.
func (in *ingress) RoundTrip(req *http.Request) (*http.Response, error) {
	p := in.m.httpPlan(in.address)
	if len(p.bcands) == 0 {
		return nil, fmt.Errorf("%w: no http connector for %q", errNoCandidate, in.address)
	}
	hedge := in.hedge.mode != hedgeOff && hedgeable(req.Method, req.Header)
	retry := in.retries > 0 && retryable(req.Method, req.Header)
	if hedge || retry {
		ok, err := replayable(req)
		if err != nil {
			return nil, err
		}
		hedge, retry = hedge && ok, retry && ok
	}
	retries := 0
	if retry {
		retries = in.retries
	}
	var delay time.Duration
	if hedge {
		p95, known := in.p95()
		delay, hedge = in.hedge.delay(p95, known)
	}
	return in.runRace(req, p, hedge, delay, retries)
}

// remoteTransport returns the pooled transport to address along path.
func (m *Manager) remoteTransport(address string, path []siteid.ID) http.RoundTripper {
	var key strings.Builder
	key.WriteString(address)
	for _, s := range path {
		key.WriteByte('/')
		key.WriteString(s.String())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.http.remotes[key.String()]; t != nil {
		return t
	}
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, m.cfg.ConnectTimeout)
			defer cancel()
			return m.cfg.Net.OpenStream(ctx, forward.NewHeader(forward.KindHTTP, address, m.cfg.Self, path))
		},
		MaxIdleConnsPerHost: 64,
		// Shorter than the connector site's idle timeout, so that the
		// ingress closes an idle stream before the far end may, and never
		// sends a request into a stream being closed.
		IdleConnTimeout:    30 * time.Second,
		DisableCompression: true,
	}
	m.http.remotes[key.String()] = t
	return t
}

// replayable makes req's body readable again through GetBody when it is
// small enough to keep, and reports whether it is.
func replayable(req *http.Request) (bool, error) {
	if req.Body == nil || req.Body == http.NoBody {
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		return true, nil
	}
	if req.ContentLength < 0 || req.ContentLength > maxReplayBody {
		return false, nil
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, maxReplayBody+1))
	if err != nil {
		return false, err
	}
	if len(b) > maxReplayBody { // the length was a lie; cannot happen with net/http
		return false, fmt.Errorf("request body longer than its Content-Length")
	}
	req.Body.Close()
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(b))), nil }
	req.Body, _ = req.GetBody()
	return true, nil
}

func closeResponse(r *http.Response) {
	if r != nil {
		r.Body.Close()
	}
}

// wrapBody calls done once when body is closed. It keeps the Write of an
// upgraded connection's body, which ReverseProxy needs for the tunnel.
func wrapBody(body io.ReadCloser, done func()) io.ReadCloser {
	b := &doneBody{ReadCloser: body, done: done}
	if rw, ok := body.(io.ReadWriteCloser); ok {
		return &doneRWBody{doneBody: b, w: rw}
	}
	return b
}

type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

type doneRWBody struct {
	*doneBody
	w io.Writer
}

func (b *doneRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }
