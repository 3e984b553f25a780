package broker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/push"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/observe/tracing"
	"weft.dev/weft/internal/resource"
)

// pusher delivers one push subscription: volatile events from its channel,
// persisted ones from the inbox after its stored cursor, one at a time so the
// sink sees them in order.
type pusher struct {
	sub     resource.Subscription
	kind    events.Kind
	pattern string
	policy  push.Policy
	ch      chan delivery
	// at is the inbox seq delivered up to, for back-pressure.
	at     atomic.Uint64
	cancel context.CancelFunc
	done   chan struct{}
}

func newPusher(b *Broker, s resource.Subscription) *pusher {
	p := &pusher{sub: s, kind: events.Topic, pattern: s.Spec.Topic, ch: make(chan delivery, 1024)}
	if s.Spec.Queue != "" {
		p.kind, p.pattern = events.Queue, s.Spec.Queue
	}
	d, _ := time.ParseDuration(s.Spec.BackoffDelay)
	p.policy = push.Policy{Retry: s.Spec.Retry, Exponential: s.Spec.Backoff != "linear", Delay: d}
	return p
}

func (p *pusher) interest() interest { return interest{p.kind, p.pattern} }

func (b *Broker) startPusherLocked(p *pusher) {
	if b.ctx == nil {
		return
	}
	ctx, cancel := context.WithCancel(b.ctx)
	p.cancel, p.done = cancel, make(chan struct{})
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer close(p.done)
		b.runPusher(ctx, p)
	}()
}

var pushClient = &http.Client{Timeout: 30 * time.Second}

func (b *Broker) runPusher(ctx context.Context, p *pusher) {
	cursor, ok, err := b.st.Cursor(p.sub.Name)
	if err != nil {
		b.log.Error("cannot read subscription cursor", "subscription", p.sub.Name, "err", err)
	}
	if !ok {
		// A new subscription starts with what arrives from now on.
		_, cursor, _ = b.st.Heads()
		b.st.SetCursor(p.sub.Name, cursor)
	}
	p.at.Store(cursor + 1)
	for ctx.Err() == nil {
		wake := b.inboxWait()
		var batch []store.Entry
		var seqs []uint64
		b.st.ReadIn(cursor, func(seq uint64, e store.Entry) bool {
			batch, seqs = append(batch, e), append(seqs, seq)
			return len(batch) < 256
		})
		for i, e := range batch {
			if events.Kind(e.Kind) == p.kind && events.Match(p.pattern, e.Subject) {
				if !b.deliverPush(ctx, p, delivery{Seq: seqs[i], Subject: e.Subject, JSON: e.Payload, Trace: tracePtr(e.Trace)}) {
					return
				}
			}
			cursor = seqs[i]
		}
		if len(batch) > 0 {
			if err := b.st.SetCursor(p.sub.Name, cursor); err != nil {
				b.log.Error("cannot save subscription cursor", "subscription", p.sub.Name, "err", err)
			}
			p.at.Store(cursor + 1)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case d := <-p.ch:
			if !b.deliverPush(ctx, p, d) {
				return
			}
		}
	}
}

// deliverPush posts one event with the subscription's retries, then to the
// dead-letter sink. It reports false only when ctx ended. The span of a
// traced delivery covers every attempt, and each request carries it as
// traceparent.
func (b *Broker) deliverPush(ctx context.Context, p *pusher, d delivery) bool {
	e, err := cloudevent.Unmarshal(d.JSON)
	if err != nil {
		return true
	}
	ctx, span := b.startDeliver(ctx, d.trace(), d.Subject, p.kind, p.sub.Name, d.Seq)
	defer span.End()
	var status int
	for attempt := 0; ; attempt++ {
		status = post(ctx, p.sub.Spec.Sink, e)
		out := push.Classify(status)
		if out == push.Delivered {
			b.m.deliver("push", p.kind, d.Subject)
			span.SetAttributes(tracing.KeyAttempt.Int(attempt + 1))
			return true
		}
		attemptFailed(span, attempt, status)
		if out == push.Failed || attempt >= p.policy.Retry {
			break
		}
		select {
		case <-ctx.Done():
			return false
		case <-b.clock.After(p.policy.Backoff(attempt)):
		}
	}
	b.m.drop("push-failed", p.kind, d.Subject)
	tracing.Fail(span, fmt.Errorf("delivery to %s failed with status %d", p.sub.Spec.Sink, status))
	if dl := p.sub.Spec.DeadLetter; dl != "" {
		// Knative marks dead letters with why delivery failed.
		e.SetExtension("knativeerrordest", p.sub.Spec.Sink)
		e.SetExtension("knativeerrorcode", status)
		for attempt := 0; push.Classify(post(ctx, dl, e)) == push.Retry && attempt < p.policy.Retry; attempt++ {
			select {
			case <-ctx.Done():
				return false
			case <-b.clock.After(p.policy.Backoff(attempt)):
			}
		}
	}
	return ctx.Err() == nil
}

// post delivers e to url in binary mode and returns the status, 0 when there
// was no answer.
func post(ctx context.Context, url string, e cloudevent.Event) int {
	req, err := cloudevent.NewRequest(ctx, url, e)
	if err != nil {
		return 0
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		// The delivery's span; the event keeps its own traceparent.
		tracing.Propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	resp, err := pushClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode
}

// PutSubscription creates or replaces a push subscription. A pattern that
// is not valid gets an error wrapping events.ErrBadSubject (400), and one
// that would take this site's interests past MaxInterests
// ErrTooManyInterests (429).
func (b *Broker) PutSubscription(s resource.Subscription) error {
	p := newPusher(b, s)
	if err := events.ValidatePattern(p.pattern); err != nil {
		return fmt.Errorf("subscription %s: %w", s.Name, err)
	}
	in := p.interest()
	b.mu.Lock()
	var replacing *interest
	if old := b.pushes[s.Name]; old != nil {
		replacing = new(old.interest())
	}
	err := b.admitLocked(in, replacing)
	if err == nil {
		b.ints.reserve(in) // held while the store writes it
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("subscription %s: %w", s.Name, err)
	}
	err = b.st.PutConfig(resource.KindSubscription+"/"+s.Name, s)
	b.mu.Lock()
	b.ints.done(in)
	var old *pusher
	if err == nil {
		old = b.pushes[s.Name]
		b.pushes[s.Name] = p
		b.ints.hold(in)
		if old != nil {
			b.ints.release(old.interest(), time.Time{})
		}
	}
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if old != nil && old.cancel != nil {
		old.cancel()
		<-old.done
	}
	b.mu.Lock()
	if b.pushes[s.Name] == p {
		b.startPusherLocked(p)
	}
	b.interestsChangedLocked()
	b.mu.Unlock()
	return nil
}

// DeleteSubscription removes a push subscription; it reports whether it existed.
func (b *Broker) DeleteSubscription(name string) (bool, error) {
	found, err := b.st.DeleteConfig(resource.KindSubscription + "/" + name)
	if err != nil {
		return false, err
	}
	b.mu.Lock()
	p := b.pushes[name]
	if p != nil {
		delete(b.pushes, name)
		b.ints.release(p.interest(), time.Time{})
	}
	b.interestsChangedLocked()
	b.mu.Unlock()
	if p != nil && p.cancel != nil {
		p.cancel()
		<-p.done
	}
	b.st.DeleteCursor(name)
	return found, nil
}

// PutTopic creates or replaces a topic's configuration.
func (b *Broker) PutTopic(t resource.Topic) error {
	if err := events.ValidateSubject(t.Name); err != nil {
		return err
	}
	if err := b.st.PutConfig(resource.KindTopic+"/"+t.Name, t); err != nil {
		return err
	}
	b.mu.Lock()
	b.topics[t.Name] = t
	b.mu.Unlock()
	return nil
}

// PutQueue creates or replaces a queue's configuration.
func (b *Broker) PutQueue(q resource.Queue) error {
	if err := events.ValidateSubject(q.Name); err != nil {
		return err
	}
	if err := b.st.PutConfig(resource.KindQueue+"/"+q.Name, q); err != nil {
		return err
	}
	b.mu.Lock()
	b.queues[q.Name] = q
	b.mu.Unlock()
	return nil
}

// DeleteTopic removes a topic's configuration; it reports whether it
// existed. Publishing to the name goes on, as to any topic not configured:
// volatile. Events stored while it was persisted stay until they expire.
func (b *Broker) DeleteTopic(name string) (bool, error) {
	return deleteConfig(b, resource.KindTopic, name, b.topics)
}

// DeleteQueue removes a queue's configuration; it reports whether it
// existed. Entries already queued are still handed out.
func (b *Broker) DeleteQueue(name string) (bool, error) {
	return deleteConfig(b, resource.KindQueue, name, b.queues)
}

// deleteConfig removes a topic's or queue's configuration from the store,
// then from m (guarded by mu).
func deleteConfig[T any](b *Broker, kind, name string, m map[string]T) (bool, error) {
	found, err := b.st.DeleteConfig(kind + "/" + name)
	if err != nil {
		return false, err
	}
	b.mu.Lock()
	delete(m, name)
	b.mu.Unlock()
	return found, nil
}

// Config lists the topics, queues and subscriptions, sorted by name.
func (b *Broker) Config() (ts []resource.Topic, qs []resource.Queue, ss []resource.Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.topics {
		ts = append(ts, t)
	}
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	for _, p := range b.pushes {
		ss = append(ss, p.sub)
	}
	sortByName(ts, func(t resource.Topic) string { return t.Name })
	sortByName(qs, func(q resource.Queue) string { return q.Name })
	sortByName(ss, func(s resource.Subscription) string { return s.Name })
	return ts, qs, ss
}

func sortByName[T any](xs []T, name func(T) string) {
	slices.SortFunc(xs, func(a, b T) int { return strings.Compare(name(a), name(b)) })
}

// consumerLag checks that no push subscription of a topic has MaxBacklog or
// more stored events left to deliver: past that, this site takes no more
// persisted events, so that a slow sink slows publishers instead of filling
// the disk.
func (b *Broker) consumerLag() error {
	head := b.inHead.Load()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.pushes {
		if lag := p.lag(head); p.kind == events.Topic && lag >= b.cfg.MaxBacklog {
			return fmt.Errorf("%w: %s has %d events left to deliver to %s", ErrConsumerBehind, p.sub.Name, lag, p.sub.Spec.Sink)
		}
	}
	return nil
}

// lag is how many inbox entries up to head are past the subscription's
// position: at most what it has yet to deliver. 0 before it started.
func (p *pusher) lag(head uint64) uint64 {
	if at := p.at.Load(); at != 0 && head+1 > at {
		return head + 1 - at
	}
	return 0
}
