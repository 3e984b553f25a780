// Package site assembles one weft site: its identity and state on disk, its links
// to other sites, the router driven by their records, the services, and the admin
// API. It is the composition root: nothing in weft imports it but cmd/weft.
//
// # Concurrency
//
// Locks, in the order they may be taken (a later one may be taken while
// holding an earlier one, never the reverse):
//
//  1. saveMu serialises changes to the state on disk (commit). It is held
//     while the state file is written and fsynced, and by nothing else.
//  2. mu guards peers and dialers: the link sessions up now and the dial
//     loops. It is held only for map operations, never across I/O or a call
//     into another subsystem.
//
// peerConn.mu, dialer.mu, sitePolicy.mu and eventAuth.mu are leaves, taken alone.
//
// What the data path reads is published through atomic pointers and read
// without locks: the state as last saved (st), the cheapest session to each
// neighbour (sessions) and the route table (table). The router is owned by
// one goroutine (routerLoop): every input reaches it through a channel, and
// it calls into the services and the broker holding no lock of this package.
package site

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"weft.dev/weft/internal/bridge"
	"weft.dev/weft/internal/console"
	"weft.dev/weft/internal/datadir"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/observe"
	"weft.dev/weft/internal/observe/tracing"
	"weft.dev/weft/internal/opkey"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/seal"
	"weft.dev/weft/internal/service"
	"weft.dev/weft/internal/siteid"
	"weft.dev/weft/internal/vl3"
	"weft.dev/weft/internal/workers"
)

// Options configure a site.
type Options struct {
	Name    string // required on first start; must match afterwards
	DataDir string
	// AdminAddr and LinkListen default to loopback with a free port.
	AdminAddr  string
	LinkListen string
	// Advertise are the link addresses put into tokens; default: the link
	// listener's own address.
	Advertise []string
	Logger    *slog.Logger
	Link      link.Config
	// EventsAddr is where the event API listens; default loopback with a
	// free port.
	EventsAddr string
	// RTTRefresh is how often measured RTTs are checked for a change worth
	// re-announcing in the site record.
	RTTRefresh time.Duration
	// Events limits what clients of the event API may hold; zero fields
	// take the broker's defaults.
	Events EventLimits
	// EventsAuth says when the event API requires a credential:
	// EventsAuthAuto (the default), EventsAuthOn or EventsAuthOff.
	EventsAuth string
	// EventsStore says when a persisted event is durable before the site
	// acknowledges it (--events-sync); the zero value fsyncs first.
	EventsStore store.Options

	// OpKeyLife is the life of each operational key's certificate
	// (default 30 days); the site rotates it when a third is left.
	OpKeyLife time.Duration
	// SealKeySwitch is how long after a key rotation the site's own new
	// seal handshakes move to the new seal key, so that its peers have the
	// record that advertises it first (default 10 s).
	SealKeySwitch time.Duration
	// SealKeyGrace is how long after a key rotation the site still
	// answers seal handshakes made with the key it replaced, from peers
	// that hold its record from before, and advertises that key as its
	// previous one, restarts included (default 1 h; at least
	// SealKeySwitch).
	SealKeyGrace time.Duration

	// Persist, when set, is called after each change is saved to DataDir,
	// under the save lock; an error undoes nothing on disk but is the
	// change's error. Kubernetes mode copies the state into a Secret here.
	Persist func() error
	// Tracing is where the site's spans go; nil records none.
	Tracing *tracing.Provider
}

// EventLimits bound what clients of the event API can make a site hold.
type EventLimits struct {
	MaxInterests              int // distinct topic and queue patterns announced
	MaxSubscriptions          int // live stream subscriptions in total
	MaxSubscriptionsPerClient int // live stream subscriptions per client IP
}

// Site is a running weft site.
type Site struct {
	opts    Options
	log     *slog.Logger
	metrics *observe.Metrics
	tracer  *tracing.Tracer   // nil: tracing off
	key     *identity.SiteKey // the site ID is its hash
	ca      *identity.CA
	// legacyCA is the CA under the random ID the site had before it moved
	// to a key-derived one, nil if it never had one.
	legacyCA *identity.CA
	records  *recordChecker
	id       siteid.ID
	// revMu guards revoked, the statements of revoked sites by site; a
	// leaf lock held only for map operations.
	revMu   sync.Mutex
	revoked map[siteid.ID][]byte
	// revokedKeys are the statements of revoked operational keys, by
	// key; under revMu.
	revokedKeys map[[32]byte][]byte
	// op signs the site's records and link proofs (opkey.go); rotMu
	// serialises rotations and guards sealKey, the current seal key.
	op      atomic.Pointer[opkey.Signer]
	rotMu   sync.Mutex
	sealKey seal.Key
	name    string
	svc     *service.Manager
	lock    *datadir.Lock

	adminToken string
	adminLn    net.Listener
	linkLn     net.Listener
	serverTLS  *tls.Config
	// serverCert and legacyCert are what the link listener presents; they
	// are renewed while the site runs (renewServerCerts).
	serverCert atomic.Pointer[tls.Certificate]
	legacyCert atomic.Pointer[tls.Certificate]

	// st is the state as last saved. commit replaces it whole and nothing
	// changes it in place, so it is read without a lock.
	st     atomic.Pointer[state]
	saveMu sync.Mutex

	mu       sync.Mutex
	peers    map[siteid.ID][]*peerConn
	dialers  map[string]*dialer // outbound link name -> its dial loop
	sessions atomic.Pointer[map[siteid.ID]*link.Session]

	// router is routerLoop's alone; table is its latest snapshot.
	router   *routing.Router
	routerIn chan routerInput
	localDue chan struct{} // announce's wake-up, one pending at most
	table    atomic.Pointer[routing.Table]

	// sealOut and sealIn seal service streams end to end (seal.go);
	// sealCount counts the streams by how they are protected.
	sealOut   *seal.Initiator
	sealIn    *seal.Responder
	sealCount sealCounters

	// events is the event mesh; eventStore and eventsLn are its store and
	// API listener (events*.go).
	events     *broker.Broker
	eventStore *store.Store
	eventsLn   net.Listener
	// eventObjMu serialises puts of topics and queues, so that a name
	// never becomes both (events.go). It is a leaf, held across calls
	// into the broker, which take no lock of this package.
	eventObjMu sync.Mutex
	// bridges runs the event bridges to brokers (bridges.go).
	bridges *bridge.Manager
	// evAuth decides who may use the event API (eventauth.go).
	evAuth eventAuth
	// pol is the address policy across organisations (policy.go).
	pol *sitePolicy
	// sampler and recent feed the web console (console.go): rates from
	// the site's metrics, and the warnings and errors it logged.
	sampler *console.Sampler
	recent  *console.Recent
	// vl3 runs the site's vL3 networks (networks.go).
	vl3 *vl3.Manager

	ctx    context.Context // the Run context: ends every goroutine
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// streamWorkers run the handlers of streams peers open (goStream).
	streamWorkers *workers.Pool
}

// New loads or creates the site in opts.DataDir, locks the directory against
// a second process and binds its admin and link addresses, writing them under
// the data directory. Run serves them.
func New(opts Options) (s *Site, err error) {
	if opts.DataDir == "" {
		return nil, errors.New("a site needs a data directory: pass --data")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.AdminAddr == "" {
		opts.AdminAddr = "127.0.0.1:0"
	}
	if opts.LinkListen == "" {
		opts.LinkListen = "127.0.0.1:0"
	}
	if opts.OpKeyLife == 0 {
		opts.OpKeyLife = defaultOpKeyLife
	}
	if opts.SealKeySwitch == 0 {
		opts.SealKeySwitch = defaultSealKeySwitch
	}
	if opts.SealKeyGrace == 0 {
		opts.SealKeyGrace = defaultSealKeyGrace
	}
	opts.SealKeyGrace = max(opts.SealKeyGrace, opts.SealKeySwitch)
	if opts.RTTRefresh == 0 {
		opts.RTTRefresh = 5 * time.Second
	}
	lock, err := datadir.Acquire(opts.DataDir)
	if err != nil {
		return nil, err
	}
	s = &Site{opts: opts, lock: lock, streamWorkers: workers.New(workers.MaxIdle)}
	// A failing New returns a nil *Site; release the one made here.
	made := s
	defer func() {
		if err != nil {
			made.release()
		}
	}()
	now := time.Now()
	st, k, err := loadOrInit(opts.DataDir, opts.Name, now, opts.Logger)
	if err != nil {
		return nil, err
	}
	if s.adminToken, err = adminToken(opts.DataDir); err != nil {
		return nil, err
	}
	s.key, s.id, s.ca, s.legacyCA, s.name = k.site, k.site.ID(), k.ca, k.legacyCA, st.Name
	s.st.Store(st)
	s.recent = console.NewRecent(consoleErrors)
	s.log = slog.New(s.recent.Tee(opts.Logger.Handler())).With("site", st.Name)
	s.metrics = observe.NewMetrics()
	s.sampler = console.NewSampler(s.metrics.Registry, consoleSamples, console.SiteSeries...)
	s.records = newRecordChecker()
	s.peers = map[siteid.ID][]*peerConn{}
	s.dialers = map[string]*dialer{}
	s.sessions.Store(new(map[siteid.ID]*link.Session{}))
	s.router = routing.NewSigned(s.key.Private(), st.Name, uint64(now.UnixMilli())<<16)
	if err := s.loadRevocations(st); err != nil {
		return nil, err
	}
	op, err := loadOrNewOpKey(opts.DataDir, s.key, now, s.opts.OpKeyLife, s.keyRevoked)
	if err != nil {
		return nil, err
	}
	s.op.Store(op)
	if err := s.router.SetSigner(op); err != nil {
		return nil, err
	}
	s.routerIn = make(chan routerInput, routerQueue)
	s.localDue = make(chan struct{}, 1)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.table.Store(s.router.Table())
	s.metrics.Registry.MustRegister(linkCollector{s}, stateCollector{s})
	if err := s.initSeal(); err != nil {
		return nil, err
	}
	s.pol = newSitePolicy(s.metrics.Registry)
	s.zeroSeries()
	s.tracer = opts.Tracing.Tracer(st.Name)
	s.svc = service.NewManager(service.Config{
		Self: s.id, Net: serviceNet{s}, Metrics: s.metrics, Logger: s.log, Tracer: s.tracer,
	})
	if s.linkLn, err = listenLink(opts.DataDir, opts.LinkListen); err != nil {
		return nil, fmt.Errorf("link listener: %w", err)
	}
	if s.adminLn, err = net.Listen("tcp", opts.AdminAddr); err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	if len(s.opts.Advertise) == 0 {
		s.opts.Advertise = []string{s.linkLn.Addr().String()}
	}
	if err := s.initTLS(now); err != nil {
		return nil, err
	}
	if err := s.initEvents(); err != nil {
		return nil, err
	}
	if err := s.initBridges(); err != nil {
		return nil, err
	}
	if err := s.initNetworks(); err != nil {
		return nil, err
	}
	for name, a := range map[string]string{adminAddrFile: s.adminLn.Addr().String(), linkAddrFile: s.linkLn.Addr().String()} {
		if err := writeFileAtomic(filepath.Join(opts.DataDir, name), []byte(a), 0o644); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// listenLink binds the link listener. With port 0 a restarted site first tries
// the address it had, because its peers dial the addresses in the tokens they
// redeemed.
func listenLink(dir, addr string) (net.Listener, error) {
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		if prev, err := os.ReadFile(filepath.Join(dir, linkAddrFile)); err == nil {
			if ln, err := net.Listen("tcp", string(prev)); err == nil {
				return ln, nil
			}
		}
	}
	return net.Listen("tcp", addr)
}

func (s *Site) initTLS(now time.Time) error {
	for _, a := range s.opts.Advertise {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("advertised address %q: %w", a, err)
		}
	}
	if err := s.renewServerCerts(now); err != nil {
		return err
	}
	// Admission is decided after the handshake (admitPeer), where a refused
	// peer can be told why; a TLS alert cannot carry the reason.
	s.serverTLS = identity.ServerTLSConfig(s.ca, *s.serverCert.Load(), nil)
	var legacy siteid.ID
	var legacyCert func() *tls.Certificate
	if s.legacyCA != nil {
		legacy, legacyCert = s.legacyCA.Site(), s.legacyCert.Load
	}
	identity.ServeCertificates(s.serverTLS, s.serverCert.Load, legacy, legacyCert)
	return nil
}

// renewServerCerts makes new link listener certificates (and the one under
// the legacy ID, if any); handshakes from then on get them, sessions
// already up are untouched.
func (s *Site) renewServerCerts(now time.Time) error {
	hosts := make([]string, 0, len(s.opts.Advertise))
	for _, a := range s.opts.Advertise {
		h, _, _ := net.SplitHostPort(a)
		hosts = append(hosts, h)
	}
	cert, err := s.ca.ServerCertificate(now, hosts)
	if err != nil {
		return err
	}
	if s.legacyCA != nil {
		legacy, err := s.legacyCA.ServerCertificate(now, hosts)
		if err != nil {
			return err
		}
		s.legacyCert.Store(&legacy)
	}
	s.serverCert.Store(&cert)
	return nil
}

// serverCertDue says whether the listener certificate has a third of its
// life or less left.
func (s *Site) serverCertDue(now time.Time) bool {
	leaf := s.serverCert.Load().Leaf
	return leaf.NotAfter.Sub(now) < leaf.NotAfter.Sub(leaf.NotBefore)/3
}

// release closes what New opened, for a New that failed or a Run that ended.
func (s *Site) release() {
	for _, ln := range []net.Listener{s.linkLn, s.adminLn, s.eventsLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if s.eventStore != nil {
		s.eventStore.Close()
	}
	s.lock.Unlock()
}

// ID is the site's stable identifier.
func (s *Site) ID() siteid.ID { return s.id }

// Name is the site's name.
func (s *Site) Name() string { return s.name }

// AdminAddr is where the admin API listens.
func (s *Site) AdminAddr() net.Addr { return s.adminLn.Addr() }

// LinkAddr is where the site accepts links.
func (s *Site) LinkAddr() net.Addr { return s.linkLn.Addr() }

// AdminToken is the bearer credential of the admin API.
func (s *Site) AdminToken() string { return s.adminToken }

// Table is the current route table.
func (s *Site) Table() *routing.Table { return s.table.Load() }

// state is the site's state as last saved; callers must not change it.
func (s *Site) state() *state { return s.st.Load() }

// Run serves until ctx ends, then shuts down: listeners stop, links close, the
// data directory is unlocked.
func (s *Site) Run(ctx context.Context) error {
	defer s.cancel()
	if err := s.restore(); err != nil {
		s.release()
		return err
	}
	s.vl3.Start()
	// The broker runs before anything that calls it: the router loop
	// (TableChanged) and the admin API.
	stopEvents := s.runEvents()
	admin := &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.goFunc(func() {
		if err := admin.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin API stopped", "err", err)
		}
	})
	s.goFunc(s.routerLoop)
	s.bridges.Run(s.ctx)
	s.goFunc(s.acceptLinks)
	s.goFunc(s.refreshLoop)
	s.goFunc(func() { s.sampler.Run(s.ctx, consoleInterval) })
	s.announce()
	s.log.Info("site running", "id", s.id.String(), "admin", s.AdminAddr().String(), "link", s.LinkAddr().String(), "events", s.EventsAddr().String())

	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	s.log.Info("site stopping")
	s.cancel()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin.Shutdown(shutdownCtx)
	s.linkLn.Close()
	s.svc.Close()
	s.vl3.Close()
	s.mu.Lock()
	for _, pcs := range s.peers {
		for _, pc := range pcs {
			pc.sess.Close()
		}
	}
	s.mu.Unlock()
	s.bridges.Wait()
	stopEvents()
	s.wg.Wait()
	s.streamWorkers.Close()
	s.release()
	return nil
}

// goFunc runs f in a goroutine that Run waits for before it returns.
func (s *Site) goFunc(f func()) {
	s.wg.Add(1)
	go s.run(f)
}

// goStream runs f as goFunc does, on one of the workers kept for stream
// handlers: a handler calls deep (service, seal, net), and a worker's stack
// has already grown where a new goroutine's would grow by copying.
func (s *Site) goStream(f func()) {
	s.wg.Add(1)
	s.streamWorkers.Go(func() { s.run(f) })
}

func (s *Site) run(f func()) {
	defer s.wg.Done()
	f()
}

// restore brings back what the site had before a restart: its services and the
// dial loops of its outbound links.
func (s *Site) restore() error {
	st := s.state()
	if st.SealRotated != nil {
		s.scheduleSealKeys(s.sealKey, *st.SealRotated)
	}
	for _, c := range st.Connectors {
		s.svc.SetConnector(c)
	}
	for _, l := range st.Listeners {
		if _, err := s.svc.SetListener(l); err != nil {
			return err
		}
	}
	for _, ol := range st.Outbound {
		if ol.Refused == "" {
			s.startDialer(ol)
		}
	}
	return nil
}

// recordRefresh is how often a site re-announces its record even when nothing
// changed: flooding is reliable only per session, and a record dropped while
// links came and went at once would otherwise stay lost until the next change.
const recordRefresh = 30 * time.Second

// refreshLoop re-announces the site record when measured RTTs moved enough to
// matter, and every recordRefresh; it also purges expired tokens and
// rotates link certificates that are due.
func (s *Site) refreshLoop() {
	t := time.NewTicker(s.opts.RTTRefresh)
	defer t.Stop()
	announced := map[siteid.ID]time.Duration{}
	last := time.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		changed := false
		for _, l := range s.localLinks() {
			old := announced[l.Peer]
			if d := l.RTT - old; d > old/4 && d > time.Millisecond || -d > old/4 && -d > time.Millisecond {
				announced[l.Peer] = l.RTT
				changed = true
			}
		}
		if err := s.purgeTokens(time.Now()); err != nil {
			s.log.Error("cannot purge expired tokens", "err", err)
		}
		s.rotateDue(time.Now())
		s.rotateKeyDue(time.Now())
		if s.serverCertDue(time.Now()) {
			if err := s.renewServerCerts(time.Now()); err != nil {
				s.log.Error("cannot renew the link listener's certificate; retrying", "err", err)
			} else {
				s.log.Info("link listener certificate renewed")
			}
		}
		if changed || time.Since(last) >= recordRefresh {
			last = time.Now()
			s.announce()
		}
	}
}
