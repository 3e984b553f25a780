package broker

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/observe/tracectx"
)

// Live subscribers (SSE and WebSocket streams), the interests they and push
// subscriptions make this site announce, and the limits on both: a site's
// record carries its interests to every site of the network, and a client
// can open streams as fast as it likes, so both are bounded before the
// record is.

// delivery is one event for a local subscriber.
type delivery struct {
	Seq     uint64 // inbox seq for persisted events, else 0
	Subject string
	JSON    []byte // structured CloudEvent
	// Trace is the context of the span that brought the event here (its
	// hop or publish), nil when it is not traced.
	Trace *tracectx.Context
}

// subscriber is a live local consumer (an SSE client).
type subscriber struct {
	id      string
	kind    events.Kind
	pattern string
	client  string // the client's address, for MaxSubscriptionsPerClient
	ch      chan delivery
	// missed is the lowest inbox seq of a stored event this subscriber
	// could not take, 0 when none: its stream reads the inbox from there
	// rather than lose what was stored for it.
	missed atomic.Uint64
	// wake tells the stream that missed was set.
	wake chan struct{}
	// pend, once a topic's stream runs, is where deliveries go instead of
	// ch: straight into what the stream writes next, so that a burst is
	// not dropped while the goroutine moving ch's deliveries waits for a
	// CPU. A delivery is lost only when the stream itself is behind.
	pend atomic.Pointer[pending]
}

// miss records that the stored event seq did not reach s.
func (s *subscriber) miss(seq uint64) {
	for {
		old := s.missed.Load()
		if old != 0 && old <= seq || s.missed.CompareAndSwap(old, seq) {
			break
		}
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Defaults of the limits in Config.
const (
	// DefaultMaxInterests leaves room in the site record: an interest is
	// at most 2+events.MaxSubjectLen = 242 bytes and a 2-byte length, so
	// 1,024 take at most 250 KB, a quarter of routing.MaxRecordSize and of
	// routing.MaxInterests, leaving the rest to links and connectors. The
	// record floods to every site on each change, and one wildcard pattern
	// covers any number of subjects, so a site needing more is rare.
	DefaultMaxInterests = 1024
	// DefaultMaxSubscriptions bounds what live streams hold: each has a
	// channel of 1,024 deliveries (48 KB) before any burst it buffers.
	DefaultMaxSubscriptions = 2048
	// DefaultMaxSubscriptionsPerClient lets one client address (a proxy
	// in front of many users counts as one) hold a sixteenth of the total.
	DefaultMaxSubscriptionsPerClient = 128
)

// Errors of a subscription beyond a limit; the event API answers 429 with
// Retry-After. The message says which limit, its value and what to do.
var (
	// ErrTooManyInterests: a new pattern would take the distinct
	// interests this site announces past Config.MaxInterests. Also
	// returned by PutSubscription; the site's admin API should answer 429.
	ErrTooManyInterests = errors.New("too many distinct subscription patterns at this site")
	// ErrTooManySubscriptions: Config.MaxSubscriptions live streams are
	// open at this site.
	ErrTooManySubscriptions = errors.New("too many live subscriptions at this site")
	// ErrTooManyClientSubscriptions: the client's address has
	// Config.MaxSubscriptionsPerClient live streams open.
	ErrTooManyClientSubscriptions = errors.New("too many live subscriptions from this client address")
)

// Labels of weft_events_refused_total.
const (
	limitInterests          = "interests"
	limitSubscriptions      = "subscriptions"
	limitClientSubscription = "subscriptions_per_client"
	limitPublishes          = "concurrent_publishes"
)

// clientAddr is the address a request's subscriptions count against: the
// peer's IP address. Forwarded-for headers are not trusted: any client can
// set them.
func clientAddr(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// subscribe registers a live subscriber for client (an address, see
// clientAddr) unless that would break a limit; the caller must call
// unsubscribe.
func (b *Broker) subscribe(kind events.Kind, pattern, client string) (*subscriber, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in := interest{kind, pattern}
	switch {
	case b.clients[client] >= b.cfg.MaxSubscriptionsPerClient:
		b.m.refused.WithLabelValues(limitClientSubscription).Inc()
		return nil, fmt.Errorf("%w %s: the limit is %d per address (MaxSubscriptionsPerClient); close one first, or subscribe once to a wildcard pattern that covers several",
			ErrTooManyClientSubscriptions, client, b.cfg.MaxSubscriptionsPerClient)
	case len(b.subs) >= b.cfg.MaxSubscriptions:
		b.m.refused.WithLabelValues(limitSubscriptions).Inc()
		return nil, fmt.Errorf("%w: the limit is %d (MaxSubscriptions); retry later, or ask the site's operator to raise it",
			ErrTooManySubscriptions, b.cfg.MaxSubscriptions)
	}
	if err := b.admitLocked(in, nil); err != nil {
		return nil, err
	}
	b.nextSub++
	s := &subscriber{id: fmt.Sprint(b.nextSub), kind: kind, pattern: pattern, client: client, ch: make(chan delivery, 1024), wake: make(chan struct{}, 1)}
	b.subs[s.id] = s
	b.clients[client]++
	b.ints.hold(in)
	b.interestsChangedLocked()
	return s, nil
}

// admitLocked checks that one more subscriber to in fits under MaxInterests
// (interestSet.admit), and counts a refusal.
func (b *Broker) admitLocked(in interest, replacing *interest) error {
	ok, evicted := b.ints.admit(in, replacing)
	if evicted {
		b.interestsChangedLocked()
	}
	if ok {
		return nil
	}
	b.m.refused.WithLabelValues(limitInterests).Inc()
	return fmt.Errorf("%w: the limit is %d (MaxInterests); subscribe to a wildcard pattern that covers several, or ask the site's operator to raise it",
		ErrTooManyInterests, b.cfg.MaxInterests)
}

// streamLinger is how long a stream subscriber's topic interest outlives
// its connection: withdrawn at once, a publisher would drop this site as a
// destination and a client reconnecting with Last-Event-ID would miss what
// was published in between. Durable interest is a push subscription's.
// A lingering interest counts toward MaxInterests, but yields its place to
// a new pattern (interestSet.admit).
const streamLinger = 2 * time.Minute

// lingerTick is how often lingering interests are checked for their end: a
// timer per departed subscriber would let a client that opens and closes
// streams in a loop pile up timers.
const lingerTick = streamLinger / 12

func (b *Broker) unsubscribe(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs[s.id] != s {
		return
	}
	delete(b.subs, s.id)
	if b.clients[s.client]--; b.clients[s.client] <= 0 {
		delete(b.clients, s.client)
	}
	b.ints.release(interest{s.kind, s.pattern}, b.clock.Now().Add(streamLinger))
	b.interestsChangedLocked()
}

// endLinger withdraws the lingering interests whose time is up. Run every
// lingerTick, it ends them between streamLinger and streamLinger plus
// lingerTick after their subscriber left.
func (b *Broker) endLinger() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ints.expire(b.clock.Now())
	b.interestsChangedLocked()
}
