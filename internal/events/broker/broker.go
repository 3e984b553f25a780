// Package broker runs a site's event mesh: local subscribers, publishing over
// HTTP, multicast trees and anycast for volatile events, and persisted
// delivery through the store and the ledger. The site package gives it the
// network (streams to other sites, the route table) and announces its
// interests; the broker does the rest.
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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/ledger"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
)

// Net is what the broker needs from its site.
type Net interface {
	// Table is the current route table.
	Table() *routing.Table
	// Open opens an event stream along path (the sites after this one, the
	// last being the far end), tagged for the far end's broker.
	Open(ctx context.Context, path []routing.SiteID, tag string) (net.Conn, error)
	// SetInterests re-announces the site record with these interests.
	SetInterests(interests []string)
}

// Stream tags: which of the two protocols an event stream speaks.
const (
	TagTree = "tree" // FrameEvent frames from a neighbour, one way
	TagLog  = "log"  // FrameData/FrameMark one way, FrameAck back
)

// Config configures a broker.
type Config struct {
	Self     routing.SiteID
	Net      Net
	Store    *store.Store
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// MaxEventSize bounds a publish request's body; default 1 MiB.
	MaxEventSize int64
	// MaxBacklog is how many persisted entries may await acknowledgement
	// before publishers get 503; default 1,000,000.
	MaxBacklog uint64
}

// Broker is one site's event mesh engine.
type Broker struct {
	cfg Config
	log *slog.Logger
	st  *store.Store
	m   metrics
	// inflight bounds concurrent publish requests: beyond it, 429.
	inflight chan struct{}

	// mu guards the fields below. Lock order: mu before lmu.
	mu        sync.Mutex
	topics    map[string]resource.Topic
	queues    map[string]resource.Queue
	subs      map[string]*subscriber // local live subscribers, by id
	pushes    map[string]*pusher     // push subscriptions, by name
	nextSub   int
	rr        int // round-robin position among queue consumers
	interests []string
	peers     map[routing.SiteID]*peerOut
	inNotify  chan struct{} // closed and replaced when the inbox grows

	// lmu guards ledger and dests.
	lmu    sync.Mutex
	ledger *ledger.Ledger
	dests  map[routing.SiteID]*destOut

	ctx context.Context
	wg  sync.WaitGroup
}

type metrics struct {
	published, delivered, dropped, forwarded *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_published_total", Help: "Events accepted from publishers at this site."}, []string{"delivery"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_delivered_total", Help: "Events handed to local subscribers."}, []string{"kind"}),
		dropped:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_dropped_total", Help: "Volatile events dropped, by reason."}, []string{"reason"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_forwarded_total", Help: "Event frames sent to other sites."}, []string{"delivery"}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.delivered, m.dropped, m.forwarded)
	}
	return m
}

// ledgerWindow bounds the entries in flight to one destination site.
const ledgerWindow = 4096

// New restores the broker's configuration and cursors from the store.
func New(cfg Config) (*Broker, error) {
	if cfg.MaxEventSize <= 0 {
		cfg.MaxEventSize = cloudevent.DefaultMaxSize
	}
	if cfg.MaxBacklog == 0 {
		cfg.MaxBacklog = 1_000_000
	}
	b := &Broker{
		cfg: cfg, log: cfg.Logger, st: cfg.Store, m: newMetrics(cfg.Registry),
		inflight: make(chan struct{}, 256),
		topics:   map[string]resource.Topic{}, queues: map[string]resource.Queue{},
		subs: map[string]*subscriber{}, pushes: map[string]*pusher{},
		peers: map[routing.SiteID]*peerOut{}, dests: map[routing.SiteID]*destOut{},
		inNotify: make(chan struct{}),
	}
	outHead, _, err := b.st.Heads()
	if err != nil {
		return nil, err
	}
	sd, err := b.st.Dests()
	if err != nil {
		return nil, err
	}
	dests := map[routing.SiteID]ledger.Dest{}
	for id, d := range sd {
		dests[id] = ledger.Dest{Patterns: d.Patterns, Acked: d.Acked}
	}
	b.ledger = ledger.New(outHead, dests, ledgerWindow)
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
				b.pushes[s.Name] = newPusher(b, s)
			}
		}
		return nil
	})
	// The first record the site announces must carry the push
	// subscriptions' interests: a record without them would make publishers
	// drop this site's cursors.
	b.interests = b.interestsLocked()
	return b, err
}

// Run starts the broker's workers; they end with ctx. Wait waits for them.
func (b *Broker) Run(ctx context.Context) {
	b.ctx = ctx
	b.mu.Lock()
	for _, p := range b.pushes {
		b.startPusherLocked(p)
	}
	b.mu.Unlock()
	b.goFunc(b.expireLoop)
	b.TableChanged()
}

// Wait waits for every worker to end after Run's context ended.
func (b *Broker) Wait() { b.wg.Wait() }

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

// interestsLocked derives the interests from live subscribers and push
// subscriptions: sorted, without duplicates.
func (b *Broker) interestsLocked() []string {
	var out []string
	for _, s := range b.subs {
		out = append(out, events.Interest(s.kind, s.pattern))
	}
	for _, p := range b.pushes {
		out = append(out, events.Interest(p.kind, p.pattern))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// interestsChangedLocked re-announces when the interests changed; the
// announcement itself runs outside mu.
func (b *Broker) interestsChangedLocked() {
	in := b.interestsLocked()
	if slices.Equal(in, b.interests) {
		return
	}
	b.interests = in
	go b.cfg.Net.SetInterests(in)
}

// delivery is one event for a local subscriber.
type delivery struct {
	Seq     uint64 // inbox seq for persisted events, else 0
	Subject string
	JSON    []byte // structured CloudEvent
}

// subscriber is a live local consumer (an SSE client).
type subscriber struct {
	id      string
	kind    events.Kind
	pattern string
	ch      chan delivery
}

// subscribe registers a live subscriber; the caller must call unsubscribe.
func (b *Broker) subscribe(kind events.Kind, pattern string) *subscriber {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextSub++
	s := &subscriber{id: fmt.Sprint(b.nextSub), kind: kind, pattern: pattern, ch: make(chan delivery, 1024)}
	b.subs[s.id] = s
	b.interestsChangedLocked()
	return s
}

func (b *Broker) unsubscribe(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, s.id)
	b.interestsChangedLocked()
}

// deliverLocal hands an event to this site's subscribers: every matching one
// for a topic, one with room for a queue. It never blocks: a subscriber that
// cannot keep up loses volatile events (counted); persisted ones it re-reads
// from the inbox. It reports whether a queue event found a consumer.
func (b *Broker) deliverLocal(kind events.Kind, d delivery) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	var cands []*subscriber
	for _, s := range b.subs {
		if s.kind == kind && events.Match(s.pattern, d.Subject) {
			cands = append(cands, s)
		}
	}
	var pushes []*pusher
	for _, p := range b.pushes {
		if p.kind == kind && events.Match(p.pattern, d.Subject) {
			pushes = append(pushes, p)
		}
	}
	if kind == events.Queue {
		// Consumers take turns; a full one is skipped.
		n := len(cands) + len(pushes)
		for i := 0; i < n; i++ {
			k := (b.rr + i) % n
			var ch chan delivery
			if k < len(cands) {
				ch = cands[k].ch
			} else {
				ch = pushes[k-len(cands)].ch
			}
			select {
			case ch <- d:
				b.rr = k + 1
				b.m.delivered.WithLabelValues("queue").Inc()
				return true
			default:
			}
		}
		return false
	}
	for _, s := range cands {
		b.offer(s.ch, d)
	}
	if d.Seq == 0 {
		// Push subscriptions read persisted events from the inbox.
		for _, p := range pushes {
			b.offer(p.ch, d)
		}
	}
	return true
}

func (b *Broker) offer(ch chan delivery, d delivery) {
	select {
	case ch <- d:
		b.m.delivered.WithLabelValues("topic").Inc()
	default:
		if d.Seq == 0 {
			b.m.dropped.WithLabelValues("slow-consumer").Inc()
		}
	}
}

// inboxGrew wakes whoever waits for new inbox entries.
func (b *Broker) inboxGrew() {
	b.mu.Lock()
	close(b.inNotify)
	b.inNotify = make(chan struct{})
	b.mu.Unlock()
}

func (b *Broker) inboxWait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inNotify
}

// Errors of the publish path, mapped to HTTP statuses in one table.
var (
	// ErrBackPressure: too much is waiting for acknowledgement; 503.
	ErrBackPressure = errors.New("persisted backlog is full: destinations are not keeping up")
	// ErrBusy: too many concurrent publishes; 429.
	ErrBusy = errors.New("too many concurrent publish requests")
	// ErrNoConsumer: a queue has no consumer anywhere reachable; 404.
	ErrNoConsumer = errors.New("no consumer for this queue is reachable")
)

func (b *Broker) persisted(kind events.Kind, name string) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if kind == events.Topic {
		if t, ok := b.topics[name]; ok && t.Spec.Delivery == resource.DeliveryPersisted {
			d, _ := time.ParseDuration(t.Spec.Retention)
			return true, d
		}
	}
	return false, 0
}

// Publish accepts events published at this site. For a persisted topic it
// returns only once they are stored.
func (b *Broker) Publish(kind events.Kind, subject string, evs []cloudevent.Decoded) error {
	if p, _ := b.persisted(kind, subject); p {
		return b.publishPersisted(subject, evs)
	}
	for _, e := range evs {
		if err := b.publishVolatile(kind, subject, e.JSON); err != nil {
			return err
		}
	}
	b.m.published.WithLabelValues("volatile").Add(float64(len(evs)))
	return nil
}

func (b *Broker) publishVolatile(kind events.Kind, subject string, payload []byte) error {
	t := b.cfg.Net.Table()
	routes := events.Interested(t, kind, subject)
	if kind == events.Queue {
		for _, r := range routes {
			if r.ID == b.cfg.Self {
				if b.deliverLocal(kind, delivery{Subject: subject, JSON: payload}) {
					return nil
				}
				continue
			}
			// A remote consumer site is trusted to have room: volatile
			// queues are at most once.
			b.forward(kind, subject, b.cfg.Self, [][]routing.SiteID{r.Path}, payload)
			return nil
		}
		return ErrNoConsumer
	}
	paths := events.TreePaths(b.cfg.Self, routes)
	local, branches := events.Split(b.cfg.Self, paths)
	if local {
		b.deliverLocal(kind, delivery{Subject: subject, JSON: payload})
	}
	for _, br := range branches {
		b.forward(kind, subject, b.cfg.Self, br.Paths, payload)
	}
	return nil
}

func (b *Broker) publishPersisted(subject string, evs []cloudevent.Decoded) error {
	b.lmu.Lock()
	backlog := b.ledger.Head() - b.ledger.Low()
	b.lmu.Unlock()
	if backlog >= b.cfg.MaxBacklog {
		return ErrBackPressure
	}
	now := time.Now().UnixNano()
	ps := make([]store.Publish, len(evs))
	for i, e := range evs {
		ps[i] = store.Publish{
			Entry:  store.Entry{Kind: byte(events.Topic), Subject: subject, Time: now, Payload: e.JSON},
			Source: e.Event.Source(), ID: e.Event.ID(), Remote: true,
		}
	}
	res, err := b.st.Append(ps)
	if err != nil {
		return err
	}
	var last uint64
	stored := 0
	for i, r := range res {
		if r.Dup {
			continue
		}
		stored++
		last = max(last, r.Out)
		b.deliverLocal(events.Topic, delivery{Seq: r.In, Subject: subject, JSON: ps[i].Payload})
	}
	b.m.published.WithLabelValues("persisted").Add(float64(stored))
	if stored > 0 {
		b.inboxGrew()
		b.ledgerDo(func(l *ledger.Ledger) { l.Appended(last) })
	}
	return nil
}

// expireLoop drops acknowledged and expired entries once a minute.
func (b *Broker) expireLoop() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		retention := 24 * time.Hour
		for _, tp := range b.topics {
			if d, err := time.ParseDuration(tp.Spec.Retention); err == nil && tp.Spec.Delivery == resource.DeliveryPersisted {
				retention = max(retention, d)
			}
		}
		b.mu.Unlock()
		b.lmu.Lock()
		low := b.ledger.Low()
		b.lmu.Unlock()
		if err := b.st.Expire(low, time.Now().Add(-retention)); err != nil {
			b.log.Error("event store expiry failed", "err", err)
		}
	}
}
