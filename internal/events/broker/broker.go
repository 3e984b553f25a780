// Package broker runs a site's event mesh: local subscribers, publishing over
// HTTP, multicast trees and anycast for volatile events, and persisted
// delivery through the store and the ledger. The site package gives it the
// network (streams to other sites, the route table) and announces its
// interests; the broker does the rest.
//
// Locks, in the order they may be taken: one may be taken while holding
// those above it, never the other way round.
//
//	mu       config, subscribers, push subscriptions, interests, peers
//	lmu      the ledger, its streams, the cursors to save and the queues'
//	         outbound counts; never held together with mu
//	marksMu  the queues' water marks (queuemark); taken under mu
//	         (interestsLocked) and under lmu (nextHops)
//	qmu      which queue workers run; held alone
//
// Under mu the broker calls Net.InterestsChanged, and under lmu Net.Table:
// neither may block on the broker or call into it. No lock is held across
// I/O (the store, streams, push sinks) or a wait for a goroutine, except for
// channel sends that cannot block (ledgerDo).
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/ledger"
	"weft.dev/weft/internal/events/queuemark"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/observe/labelcap"
	"weft.dev/weft/internal/observe/tracing"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

// Net is what the broker needs from its site.
type Net interface {
	// Table is the current route table.
	Table() *routing.Table
	// Open opens an event stream along path (the sites after this one, the
	// last being the far end), tagged for the far end's broker.
	Open(ctx context.Context, path []siteid.ID, tag string) (net.Conn, error)
	// InterestsChanged tells the site that the broker's interests changed:
	// the site must announce its record again, with Broker.Interests read
	// then. The broker calls it with its lock held, so it must not block
	// and must not call into the broker: a site wakes the goroutine that
	// announces its record, which reads the interests later, under its
	// router's lock (of two announcements, the later state then wins).
	InterestsChanged()
}

// Stream tags: which of the two protocols an event stream speaks.
const (
	TagTree = "tree" // FrameEvent frames from a neighbour, one way
	TagLog  = "log"  // FrameData/FrameMark one way, FrameAck back
)

// Config configures a broker.
type Config struct {
	Self     siteid.ID
	Net      Net
	Store    *store.Store
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// MaxEventSize bounds a publish request's body; default 1 MiB.
	MaxEventSize int64
	// MaxBacklog is how many persisted entries may await acknowledgement
	// before publishers get 503; default 1,000,000.
	MaxBacklog uint64
	// MaxInterests caps the distinct interests this site announces (live,
	// lingering and push subscriptions' patterns); a subscription beyond it
	// gets ErrTooManyInterests. Default DefaultMaxInterests; at most
	// routing.MaxInterests.
	MaxInterests int
	// MaxSubscriptions caps the live stream subscriptions (SSE and
	// WebSocket) at this site, and MaxSubscriptionsPerClient those from
	// one client IP address; beyond them, ErrTooManySubscriptions and
	// ErrTooManyClientSubscriptions. Defaults DefaultMaxSubscriptions and
	// DefaultMaxSubscriptionsPerClient.
	MaxSubscriptions          int
	MaxSubscriptionsPerClient int
	// MaxAddressLabels caps the topic and queue names that get series of
	// their own in the per-address metrics; events on names past it are
	// counted under "(other)". Default DefaultMaxAddressLabels.
	MaxAddressLabels int
	// Clock is where the broker reads time and sets timers (expiry,
	// lingering interest, retries, polling); nil is the real clock.
	Clock clock.WithTickerAndDelayedExecution
	// Authorize decides whether the holder of credential (a request's
	// bearer token, "" without one) may have access to subject: a subject
	// to publish to, or a pattern or queue to subscribe to. It returns nil,
	// or an error wrapping ErrUnauthenticated or ErrForbidden that says
	// why. It is called on every publish and subscription request, so it
	// must be quick and must not call into the broker. Nil leaves the
	// event API open.
	Authorize func(credential string, access Access, subject string) error
	// CredentialDone returns a channel that is closed once credential
	// stops being valid (deleted, expired): a live subscription that
	// Authorize let in ends then. Closed already for a credential no
	// longer valid; nil when it never ends. Nil: subscriptions end only
	// with their request.
	CredentialDone func(credential string) <-chan struct{}
	// Admit decides whether an event that site origin published on
	// subject, arriving from the neighbour from, may go to this site's
	// subscribers: the receiving end's own check of the address policy,
	// whatever the publisher's table said. It counts and logs a refusal
	// itself. It is called for every event from another site that is for
	// this one, so it must be quick and must not call into the broker.
	// Nil admits every event.
	Admit func(from, origin siteid.ID, subject string) bool
	// Tracer starts the spans of events published, forwarded and
	// delivered here (trace.go); nil: tracing off.
	Tracer *tracing.Tracer
}

// Broker is one site's event mesh engine.
type Broker struct {
	cfg   Config
	clock clock.WithTickerAndDelayedExecution
	log   *slog.Logger
	st    *store.Store
	// recent hands hops the outbound entries just committed.
	recent *recentOut
	m      metrics
	// inflight bounds concurrent publish requests: beyond it, 429.
	inflight chan struct{}

	// mu guards the fields below (lock order: the package comment).
	mu      sync.Mutex
	topics  map[string]resource.Topic
	queues  map[string]resource.Queue
	subs    map[string]*subscriber // local live subscribers, by id
	clients map[string]int         // live subscribers by client address
	pushes  map[string]*pusher     // push subscriptions, by name
	taps    map[*Tap]bool          // open taps (tap.go)
	nextSub int
	// ints counts the interests of subscribers, push subscriptions and
	// stream subscribers gone whose interest lingers (streamLinger).
	ints      *interestSet
	rr        int // round-robin position among queue consumers
	interests []string
	peers     map[siteid.ID]*peerOut
	inNotify  chan struct{} // closed and replaced when the inbox grows
	inHead    atomic.Uint64 // the inbox's last seq

	// lmu guards ledger, hops, qout and the cursor changes saveLoop has
	// yet to write.
	lmu      sync.Mutex
	ledger   *ledger.Ledger
	hops     map[siteid.ID]*hopOut
	toSave   map[siteid.ID]store.Dest
	toDelete map[siteid.ID]bool
	saveWake chan struct{}
	qout     *queueOut

	// qmu guards handing: the persisted queues whose queued entries a
	// worker hands to local consumers.
	qmu     sync.Mutex
	handing map[string]bool

	// marksMu guards marks, the water marks of the persisted queues whose
	// entries wait here for local consumers. It is its own lock, taken
	// last, because nextHops reads it under lmu.
	marksMu sync.Mutex
	marks   *queuemark.Marks

	ctx context.Context
	wg  sync.WaitGroup
}

type metrics struct {
	published, delivered, dropped, forwarded *prometheus.CounterVec
	// refused counts requests refused at a limit, by limit.
	refused *prometheus.CounterVec
	// hopFrames counts persisted entries sent per neighbour: with each
	// entry crossing a link once for all destinations beyond it, this
	// is what a topic costs a link.
	hopFrames *prometheus.CounterVec
	// authRefused counts requests refused for their credential.
	authRefused *prometheus.CounterVec
	// forwardedPersisted is looked up once: a label lookup (hashing the
	// values) per event was measurable under the volatile benchmark.
	forwardedPersisted prometheus.Counter
	// names bounds the addresses (topic and queue names) the per-address
	// series carry; folded counts what went under labelcap.Other.
	names                                     *labelcap.Set
	addrPublished, addrDelivered, addrDropped *prometheus.CounterVec
	folded                                    prometheus.Counter
}

// publish, deliver and drop count events in the totals by delivery, kind
// of consumer or reason, and per address.
func (m *metrics) publish(delivery string, kind events.Kind, subject string, n int) {
	m.published.WithLabelValues(delivery).Add(float64(n))
	m.perAddress(m.addrPublished, kind, subject, n)
}

func (m *metrics) deliver(consumer string, kind events.Kind, subject string) {
	m.delivered.WithLabelValues(consumer).Inc()
	m.perAddress(m.addrDelivered, kind, subject, 1)
}

func (m *metrics) drop(reason string, kind events.Kind, subject string) {
	m.dropped.WithLabelValues(reason).Inc()
	m.perAddress(m.addrDropped, kind, subject, 1)
}

func (m *metrics) perAddress(v *prometheus.CounterVec, kind events.Kind, subject string, n int) {
	name := m.names.Value(subject)
	if name == labelcap.Other {
		m.folded.Add(float64(n))
	}
	v.WithLabelValues(kind.String(), name).Add(float64(n))
}

func newMetrics(reg prometheus.Registerer, maxNames int) metrics {
	byAddress := []string{"kind", "address"}
	m := metrics{
		published:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_published_total", Help: "Events accepted from publishers at this site."}, []string{"delivery"}),
		delivered:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_delivered_total", Help: "Events handed to local subscribers."}, []string{"kind"}),
		dropped:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_dropped_total", Help: "Volatile events dropped, by reason."}, []string{"reason"}),
		forwarded:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_forwarded_total", Help: "Event frames sent to other sites."}, []string{"delivery"}),
		hopFrames:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_persisted_frames_total", Help: "Persisted event frames sent to each neighbour (site ID)."}, []string{"neighbour"}),
		refused:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_refused_total", Help: "Subscriptions and publishes refused at a limit, by limit."}, []string{"limit"}),
		authRefused: newAuthRefused(),
		names:       labelcap.New(maxNames),
		addrPublished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_address_published_total",
			Help: "Events accepted from publishers at this site, by topic or queue; past MaxAddressLabels names, under address=\"(other)\"."}, byAddress),
		addrDelivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_address_delivered_total",
			Help: "Events handed to local subscribers (a topic's once per subscriber), by topic or queue; past MaxAddressLabels names, under address=\"(other)\"."}, byAddress),
		addrDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_address_dropped_total",
			Help: "Events dropped at this site's consumers (slow consumer, every queue site full, push failed), by topic or queue; drops on a link are only in weft_events_dropped_total."}, byAddress),
		folded: prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_events_addresses_folded_total",
			Help: "Per-address event counts put under address=\"(other)\" because MaxAddressLabels names were taken already."}),
	}
	m.forwardedPersisted = m.forwarded.WithLabelValues("persisted")
	if reg != nil {
		reg.MustRegister(m.published, m.delivered, m.dropped, m.forwarded, m.hopFrames, m.refused, m.authRefused,
			m.addrPublished, m.addrDelivered, m.addrDropped, m.folded)
	}
	return m
}

// DefaultMaxAddressLabels is Config.MaxAddressLabels's default: a few
// hundred series per metric, what a Prometheus server takes in its stride.
const DefaultMaxAddressLabels = 200

// ledgerWindow bounds the entries in flight to one neighbour.
const ledgerWindow = 4096

// New restores the broker's configuration and cursors from the store.
func New(cfg Config) (*Broker, error) {
	if cfg.MaxEventSize <= 0 {
		cfg.MaxEventSize = cloudevent.DefaultMaxSize
	}
	if cfg.MaxBacklog == 0 {
		cfg.MaxBacklog = 1_000_000
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxInterests <= 0 {
		cfg.MaxInterests = DefaultMaxInterests
	}
	if cfg.MaxInterests > routing.MaxInterests {
		return nil, fmt.Errorf("broker: MaxInterests %d is over the %d interests a site record carries (routing.MaxInterests); use at most that", cfg.MaxInterests, routing.MaxInterests)
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.MaxSubscriptionsPerClient <= 0 {
		cfg.MaxSubscriptionsPerClient = DefaultMaxSubscriptionsPerClient
	}
	if cfg.MaxAddressLabels <= 0 {
		cfg.MaxAddressLabels = DefaultMaxAddressLabels
	}
	b := &Broker{
		cfg: cfg, clock: cfg.Clock, log: cfg.Logger, st: cfg.Store, m: newMetrics(cfg.Registry, cfg.MaxAddressLabels),
		inflight: make(chan struct{}, 256),
		topics:   map[string]resource.Topic{}, queues: map[string]resource.Queue{},
		subs: map[string]*subscriber{}, clients: map[string]int{}, pushes: map[string]*pusher{}, taps: map[*Tap]bool{}, ints: newInterestSet(cfg.MaxInterests),
		peers: map[siteid.ID]*peerOut{}, hops: map[siteid.ID]*hopOut{},
		toSave: map[siteid.ID]store.Dest{}, toDelete: map[siteid.ID]bool{}, saveWake: make(chan struct{}, 1), qout: newQueueOut(), recent: &recentOut{},
		handing:  map[string]bool{},
		marks:    queuemark.New(queueHighWater, queueLowWater),
		inNotify: make(chan struct{}),
	}
	outHead, inHead, err := b.st.Heads()
	if err != nil {
		return nil, err
	}
	b.inHead.Store(inHead)
	sd, err := b.st.Dests()
	if err != nil {
		return nil, err
	}
	dests := map[siteid.ID]ledger.Dest{}
	for id, d := range sd {
		dests[id] = ledger.Dest{Patterns: d.Patterns, Acked: d.Acked}
	}
	b.ledger = ledger.New(outHead, dests, ledgerWindow)
	if err := b.restoreQueueOut(outHead, dests); err != nil {
		return nil, err
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(backlogCollector{b})
		cfg.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_events_backlog",
			Help: "Persisted events stored here and not yet acknowledged by every destination; publishes wait at MaxBacklog."},
			func() float64 { return float64(b.backlog()) }))
	}
	err = b.st.Config(func(key string, v []byte) error {
		kind, _, _ := strings.Cut(key, "/")
		switch kind {
		case resource.KindTopic:
			var t resource.Topic
			if json.Unmarshal(v, &t) == nil {
				b.topics[t.Name] = t
			}
		case resource.KindQueue:
			var q resource.Queue
			if json.Unmarshal(v, &q) == nil {
				b.queues[q.Name] = q
			}
		case resource.KindSubscription:
			var s resource.Subscription
			if json.Unmarshal(v, &s) == nil {
				p := newPusher(b, s)
				b.pushes[s.Name] = p
				b.ints.hold(p.interest())
			}
		}
		return nil
	})
	// The first record the site announces must carry the push
	// subscriptions' interests: a record without them would make publishers
	// drop this site's cursors.
	b.interests = b.interestsLocked()
	if n := len(b.interests); n >= b.cfg.MaxInterests {
		b.log.Error("the push subscriptions' patterns reach the interest limit: new subscriptions are refused, and past the limit patterns are not announced; raise MaxInterests or delete subscriptions", "patterns", n, "limit", b.cfg.MaxInterests)
	}
	return b, err
}

// Run starts the broker's workers; they end with ctx. Wait waits for them.
// The site must call it before anything else but Interests: TableChanged,
// ServeStream and the handler's requests.
func (b *Broker) Run(ctx context.Context) {
	b.ctx = ctx
	b.mu.Lock()
	for _, p := range b.pushes {
		b.startPusherLocked(p)
	}
	b.mu.Unlock()
	b.goFunc(func() { b.every(time.Minute, b.expire) })
	b.goFunc(b.saveLoop)
	b.goFunc(func() { b.every(lingerTick, b.endLinger) })
	b.startQueues()
	b.TableChanged()
}

// Wait waits for every worker to end after Run's context ended.
func (b *Broker) Wait() { b.wg.Wait() }

// every runs f every period until the broker stops.
func (b *Broker) every(period time.Duration, f func()) {
	t := b.clock.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C():
		}
		f()
	}
}

func (b *Broker) goFunc(f func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
}

// Interests are the interests this site advertises now.
func (b *Broker) Interests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.interests)
}

// A queue whose consumers here leave queueHighWater persisted entries
// waiting is withdrawn from the interests, so that new entries go to the next
// nearest site with a consumer; it is announced again once the wait is down
// to queueLowWater. The gap keeps a queue near the mark from flooding records.
const (
	queueHighWater = 1024
	queueLowWater  = queueHighWater / 4
)

// interestsLocked derives the interests from live subscribers and push
// subscriptions, less the queues too full to take more: sorted, without
// duplicates.
func (b *Broker) interestsLocked() []string {
	b.marksMu.Lock()
	defer b.marksMu.Unlock()
	return b.ints.list(b.marks.Full)
}

// interestsChangedLocked tells the site when the interests changed; the site
// reads them later (Net.InterestsChanged).
func (b *Broker) interestsChangedLocked() {
	in := b.interestsLocked()
	if slices.Equal(in, b.interests) {
		return
	}
	b.interests = in
	b.cfg.Net.InterestsChanged()
}

// interestsChanged is interestsChangedLocked for a caller without mu.
func (b *Broker) interestsChanged() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.interestsChangedLocked()
}

// Errors of the publish path, mapped to HTTP statuses in one table.
var (
	// ErrBackPressure: too much is waiting for acknowledgement; 503.
	ErrBackPressure = errors.New("persisted backlog is full: destinations are not keeping up")
	// ErrConsumerBehind: a push subscription here has too much left to
	// deliver; 503.
	ErrConsumerBehind = errors.New("a push subscription is too far behind")
	// ErrBusy: too many concurrent publishes; 429.
	ErrBusy = errors.New("too many concurrent publish requests")
	// ErrNoConsumer: a queue has no consumer anywhere reachable; 404.
	ErrNoConsumer = errors.New("no consumer for this queue is reachable")
)

// Publish accepts events published at this site. For a persisted topic it
// returns only once they are stored. ctx is the publisher's: its trace
// context is the parent of the events' publish spans, unless an event
// carries its own (trace.go).
func (b *Broker) Publish(ctx context.Context, kind events.Kind, subject string, evs []cloudevent.Decoded) error {
	persisted, _ := b.persisted(kind, subject)
	spans, tcs := b.startPublish(ctx, kind, subject, evs, persisted)
	var err error
	if persisted {
		err = b.publishPersisted(kind, subject, evs, tcs)
	} else if err = b.publishVolatile(kind, subject, evs, tcs); err == nil {
		b.m.publish("volatile", kind, subject, len(evs))
	}
	endSpans(spans, err)
	return err
}
