package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/resource"
)

// runner runs one bridge: it dials the broker, runs every In and Out on the
// connection, and dials again with backoff when the connection fails.
type runner struct {
	m    *Manager
	b    resource.Bridge
	mod  *Module
	cfg  Config
	taps []*broker.Tap // one per Out (a queue consumer for a queue's), open for the bridge's life
	log  *slog.Logger
	// plain is the source of plain messages' events before the subject:
	// the broker's URL without credentials, path or query.
	plain string

	cancel context.CancelFunc
	done   chan struct{}

	// mu guards st.
	mu sync.Mutex
	st resource.BridgeStatus
}

// Backoff between connection attempts: doubling from backoffMin to
// backoffMax, with jitter so that bridges of many sites do not come back
// at the same moment.
var (
	backoffMin = 100 * time.Millisecond
	backoffMax = 10 * time.Second
)

// inBatch bounds the messages taken into weft with one publish.
const inBatch = 256

func (r *runner) status() resource.BridgeStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

func (r *runner) setState(state string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.State, r.st.Error = state, ""
	if err != nil {
		r.st.Error = err.Error()
	}
	switch state {
	case resource.BridgeRetrying:
		r.st.Retries++
	case resource.BridgeConnected:
		r.st.Retries = 0
	}
}

func (r *runner) count(in, out, malformed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.In += uint64(in)
	r.st.Out += uint64(out)
	r.st.Malformed += uint64(malformed)
}

// run connects and reconnects until ctx ends.
func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	wait := backoffMin
	for ctx.Err() == nil {
		r.setState(resource.BridgeConnecting, nil)
		err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the connection ended")
		}
		if r.status().State == resource.BridgeConnected {
			wait = backoffMin
		}
		r.setState(resource.BridgeRetrying, err)
		r.m.met.failures.WithLabelValues(r.b.Name).Inc()
		r.log.Warn("bridge: broker connection failed; retrying", "broker", r.plain, "in", wait, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait + rand.N(wait/2+1)):
		}
		wait = min(2*wait, backoffMax)
	}
}

// session runs the bridge over one connection until it fails.
func (r *runner) session(ctx context.Context) error {
	cfg := r.cfg
	if err := loadSecret(r.b.Spec.Auth.SecretFile, &cfg); err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, err := r.mod.Dial(dctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	r.setState(resource.BridgeConnected, nil)
	r.log.Info("bridge: connected", "broker", r.plain)
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	fail := func(err error) {
		if err != nil {
			stop(err)
		}
	}
	for _, in := range r.b.Spec.In {
		ch := make(chan *Message, inBatch)
		wg.Add(2)
		go func() {
			defer wg.Done()
			fail(conn.Receive(ctx, in.From, ch))
		}()
		go func() {
			defer wg.Done()
			fail(r.take(ctx, in, ch))
		}()
	}
	for i, out := range r.b.Spec.Out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail(r.taps[i].Run(ctx, func(ctx context.Context, js [][]byte) error { return r.send(ctx, conn, out.To, js) }))
		}()
	}
	<-ctx.Done()
	// Receive calls end when the connection does.
	conn.Close()
	wg.Wait()
	return context.Cause(ctx)
}

// take publishes the messages of ch into weft in batches, and acknowledges
// each batch's messages once weft has them. A publish that fails (back
// pressure, no consumer for a queue) is retried while the messages wait
// unacknowledged.
func (r *runner) take(ctx context.Context, in resource.BridgeIn, ch <-chan *Message) error {
	kind, subject := events.Topic, in.Topic
	if in.Queue != "" {
		kind, subject = events.Queue, in.Queue
	}
	var msgs []*Message
	for {
		msgs = msgs[:0]
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			msgs = append(msgs, m)
		}
	drain:
		for len(msgs) < inBatch {
			select {
			case m := <-ch:
				msgs = append(msgs, m)
			default:
				break drain
			}
		}
		var evs []cloudevent.Decoded
		bad := 0
		for _, m := range msgs {
			d, err := Decode(m, r.mod.Binding, Plain{Source: r.plain + "/" + m.Subject, Type: "dev.weft.bridge." + r.mod.Name})
			if err != nil {
				bad++
				r.m.met.malformed.WithLabelValues(r.b.Name).Inc()
				r.log.Warn("bridge: skipping a message that is not a CloudEvent", "from", m.Subject, "err", err)
				continue
			}
			for _, e := range d {
				if r.m.dedup.seen(subject, e.Event.Source(), e.Event.ID()) {
					continue
				}
				evs = append(evs, e)
			}
		}
		if err := r.publish(ctx, kind, subject, evs); err != nil {
			return err
		}
		for _, e := range evs {
			r.m.dedup.add(subject, e.Event.Source(), e.Event.ID())
		}
		for _, m := range msgs {
			if m.Ack != nil {
				if err := m.Ack(); err != nil {
					return fmt.Errorf("acknowledging to the broker: %w", err)
				}
			}
		}
		r.count(len(evs), 0, bad)
		r.m.met.messages.WithLabelValues(r.b.Name, "in").Add(float64(len(evs)))
	}
}

// publish publishes evs, retrying with backoff until weft takes them or ctx
// ends.
func (r *runner) publish(ctx context.Context, kind events.Kind, subject string, evs []cloudevent.Decoded) error {
	if len(evs) == 0 {
		return nil
	}
	wait := backoffMin
	for {
		err := r.m.mesh.Publish(ctx, kind, subject, evs)
		if err == nil {
			return nil
		}
		r.log.Warn("bridge: weft does not take the broker's messages yet; retrying", "to", subject, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, backoffMax)
	}
}

// send sends a tap's batch to the broker. An event that does not decode
// cannot come from this site's store, which holds what the site validated;
// it is skipped rather than block the bridge.
func (r *runner) send(ctx context.Context, conn Conn, to string, js [][]byte) error {
	evs := make([]cloudevent.Event, 0, len(js))
	for _, j := range js {
		e, err := cloudevent.Unmarshal(j)
		if err != nil {
			r.m.met.malformed.WithLabelValues(r.b.Name).Inc()
			r.log.Warn("bridge: skipping an event that does not decode", "to", to, "err", err)
			continue
		}
		evs = append(evs, e)
	}
	if len(evs) == 0 {
		return nil
	}
	if err := conn.Send(ctx, to, evs); err != nil {
		return err
	}
	r.count(0, len(evs), 0)
	r.m.met.messages.WithLabelValues(r.b.Name, "out").Add(float64(len(evs)))
	return nil
}

// plainSource is a broker URL as a plain message's source: scheme and
// host, without credentials, path or query.
func plainSource(u *url.URL) string {
	return (&url.URL{Scheme: resource.BridgeScheme(u.String()), Host: u.Host}).String()
}
