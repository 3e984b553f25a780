package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"weft.dev/weft/internal/observe/tracing"
)

var (
	// ErrUnknownKind is returned for a Target whose Kind has no Backend.
	ErrUnknownKind = errors.New("reconcile: no backend for target kind")
	// ErrNotManaged is returned for a desired object without the
	// ManagedByLabel: applying it would make it unprunable.
	ErrNotManaged = errors.New("reconcile: object lacks label " + ManagedByLabel + "=" + ManagedByValue)
)

// Options tune an Engine. Zero values take the defaults in New.
type Options struct {
	Workers    int           // default 2
	MinBackoff time.Duration // first retry delay of a failing target; default 1s
	MaxBackoff time.Duration // cap; default 5m
	Resync     time.Duration // full pass without a trigger, repairing drift; default 5m
	Clock      clock.WithTicker
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
	Tracer     *tracing.Tracer       // a span per sync of a target; nil: none
}

// item is a queue entry: either the refresh that reads the Source, or one
// target. The queue never hands the same item to two workers at once, which
// is what keeps one target's passes serial.
type item struct {
	refresh bool
	target  string
}

var refreshItem = item{refresh: true}

// Engine syncs targets. Create it with New and start it with Run.
type Engine struct {
	src     Source
	sink    StatusSink
	opts    Options
	log     *slog.Logger
	limiter *backoff
	queue   workqueue.TypedRateLimitingInterface[item]
	m       *metrics

	mu      sync.Mutex // guards targets
	targets map[string]*targetState
}

// targetState is what the engine knows of a target between passes. Nothing
// in it must survive a restart: desired comes from the Source and last only
// saves writes to the sink.
type targetState struct {
	desired    Desired
	orphan     bool // the Source no longer returns it: prune everything, then forget it
	backend    Backend
	backendKey string         // hash of the Target the backend was made for
	last       map[Ref]Status // last status recorded successfully per object
	hashes     map[Ref]string // hash of each desired object
}

// New returns an Engine reading desired state from src and recording
// statuses to sink. Call Run to start it.
func New(src Source, sink StatusSink, opts Options) *Engine {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Minute, opts.MinBackoff)
	}
	if opts.Resync <= 0 {
		opts.Resync = 5 * time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Engine{
		src:     src,
		sink:    sink,
		opts:    opts,
		log:     opts.Logger.With("component", "reconcile"),
		limiter: newBackoff(opts.MinBackoff, opts.MaxBackoff),
		m:       newMetrics(opts.Registerer),
		targets: map[string]*targetState{},
	}
	e.queue = workqueue.NewTypedRateLimitingQueueWithConfig[item](e.limiter,
		workqueue.TypedRateLimitingQueueConfig[item]{Clock: opts.Clock})
	return e
}

// Trigger asks for a pass over every target soon; it never blocks. Call it
// after any change to the desired state. Targets that are backing off keep
// their schedule and pick up the new state at their next attempt.
func (e *Engine) Trigger() { e.queue.Add(refreshItem) }

// Run processes targets until ctx is done, then stops its goroutines and
// returns nil. An Engine runs once.
func (e *Engine) Run(ctx context.Context) error {
	defer e.shutdown()
	var wg sync.WaitGroup
	for range e.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e.processNext(ctx) {
			}
		}()
	}
	e.Trigger()
	ticker := e.opts.Clock.NewTicker(e.opts.Resync)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			e.queue.ShutDown() // unblocks idle workers
			wg.Wait()
			// The gauge outlives the engine (the next one takes it over), and
			// a replica that has stopped, having lost leadership, retries
			// nothing: left alone it would report the old failures forever.
			e.m.failing.Set(0)
			return nil
		case <-ticker.C():
			e.Trigger()
		}
	}
}

// shutdown stops the queue's goroutines; the queue rejects work afterwards.
func (e *Engine) shutdown() { e.queue.ShutDown() }

// processNext takes one item off the queue and processes it, re-queueing it
// with backoff on failure. It blocks until an item is ready and returns false
// once the queue is shut down.
func (e *Engine) processNext(ctx context.Context) bool {
	it, quit := e.queue.Get()
	if quit {
		return false
	}
	defer e.queue.Done(it)
	if ctx.Err() != nil {
		// Shutting down: the queue hands out what is left, but a pass now
		// would only record "context canceled" against healthy targets.
		return false
	}
	var err error
	if it.refresh {
		err = e.refresh(ctx)
	} else {
		err = e.syncTarget(ctx, it.target)
	}
	switch {
	case err == nil:
		e.queue.Forget(it)
	case ctx.Err() == nil:
		wait := e.limiter.When(it)
		e.queue.AddAfter(it, wait)
		e.log.Warn("sync failed, retrying", "target", it.target, "refresh", it.refresh, "retry_in", wait, "err", err)
	}
	e.updateFailing()
	return true
}

// refresh reads the Source and queues every target that is not backing off.
func (e *Engine) refresh(ctx context.Context) error {
	all, err := e.src.Desired(ctx)
	if err != nil {
		e.m.sourceErrors.Inc()
		return fmt.Errorf("reading desired state: %w", err)
	}
	seen := make(map[string]bool, len(all))
	var pending []Status
	e.mu.Lock()
	for _, d := range all {
		if d.Target.Name == "" || seen[d.Target.Name] {
			e.mu.Unlock()
			e.m.sourceErrors.Inc()
			return fmt.Errorf("reading desired state: target name %q empty or repeated", d.Target.Name)
		}
		seen[d.Target.Name] = true
		ts := e.targets[d.Target.Name]
		if ts == nil {
			ts = &targetState{last: map[Ref]Status{}}
			e.targets[d.Target.Name] = ts
		}
		ts.desired, ts.orphan = d, false
		ts.hashes = make(map[Ref]string, len(d.Objects))
		for _, o := range d.Objects {
			ref, h := RefOf(o), hashObject(o)
			ts.hashes[ref] = h
			// A new or changed object is pending until delivered.
			if l, ok := ts.last[ref]; !ok || l.Hash != h {
				pending = append(pending, Status{Target: d.Target.Name, Ref: ref, State: StatePending, Hash: h})
			}
		}
	}
	for name, ts := range e.targets {
		if !seen[name] {
			ts.orphan = true
			ts.desired.Objects = nil
			ts.hashes = nil
		}
	}
	names := make([]string, 0, len(e.targets))
	for name := range e.targets {
		names = append(names, name)
	}
	e.mu.Unlock()

	for _, s := range pending {
		e.record(ctx, s)
	}
	for _, name := range names {
		it := item{target: name}
		if e.limiter.NumRequeues(it) == 0 {
			e.queue.Add(it)
		}
	}
	return nil
}

// syncTarget delivers one target's current desired state.
func (e *Engine) syncTarget(ctx context.Context, name string) (err error) {
	ctx, span := e.opts.Tracer.Start(ctx, "controller.sync", trace.SpanKindInternal, attribute.String("weft.target", name))
	defer func() {
		tracing.Fail(span, err)
		span.End()
	}()
	e.mu.Lock()
	ts := e.targets[name]
	if ts == nil {
		e.mu.Unlock()
		return nil // forgotten since it was queued
	}
	d, orphan := ts.desired, ts.orphan
	hashes := ts.hashes
	e.mu.Unlock()

	start := e.opts.Clock.Now()
	defer func() {
		result := "ok"
		if err != nil {
			result = "error"
		}
		e.m.syncs.WithLabelValues(d.Target.Kind, result).Inc()
		e.m.syncSeconds.WithLabelValues(d.Target.Kind).Observe(e.opts.Clock.Since(start).Seconds())
	}()

	attempts := e.limiter.NumRequeues(item{target: name}) + 1
	b, err := e.backendFor(ts, d.Target)
	if err != nil {
		e.failAll(ctx, d, hashes, attempts, err)
		return err
	}
	desired := make([]Ref, 0, len(d.Objects))
	want := make(map[Ref]bool, len(d.Objects))
	for _, o := range d.Objects {
		desired = append(desired, RefOf(o))
		want[RefOf(o).unversioned()] = true
	}
	present, err := b.Managed(ctx, desired)
	if err != nil {
		err = fmt.Errorf("target %s: listing managed objects: %w", name, err)
		e.failAll(ctx, d, hashes, attempts, err)
		return err
	}

	var errs []error
	for _, o := range d.Objects {
		ref := RefOf(o)
		s := Status{Target: name, Ref: ref, Hash: hashes[ref]}
		aerr := e.applyOne(ctx, b, o)
		e.m.ops.WithLabelValues(d.Target.Kind, "apply", resultOf(aerr)).Inc()
		if aerr != nil {
			s.State, s.Error, s.Attempts = StateFailed, aerr.Error(), attempts
			errs = append(errs, fmt.Errorf("apply %s: %w", ref, aerr))
		} else {
			s.State = StateApplied
		}
		e.record(ctx, s)
	}
	for _, ref := range present {
		if want[ref.unversioned()] {
			continue
		}
		derr := b.Delete(ctx, ref)
		e.m.ops.WithLabelValues(d.Target.Kind, "delete", resultOf(derr)).Inc()
		s := Status{Target: name, Ref: ref, State: StateDeleted}
		if derr != nil {
			s.State, s.Error, s.Attempts = StateFailed, derr.Error(), attempts
			errs = append(errs, fmt.Errorf("delete %s: %w", ref, derr))
		}
		e.record(ctx, s)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("target %s: %w", name, err)
	}
	if orphan {
		e.mu.Lock()
		if cur := e.targets[name]; cur == ts && ts.orphan {
			delete(e.targets, name)
		}
		e.mu.Unlock()
	}
	return nil
}

func (e *Engine) applyOne(ctx context.Context, b Backend, o *unstructured.Unstructured) error {
	if o.GetLabels()[ManagedByLabel] != ManagedByValue {
		return ErrNotManaged
	}
	return b.Apply(ctx, o)
}

// backendFor returns the target's Backend, making a new one when the target's
// connection details changed (a new kubeconfig, a rotated token).
func (e *Engine) backendFor(ts *targetState, t Target) (Backend, error) {
	key := hashTarget(t)
	e.mu.Lock()
	defer e.mu.Unlock()
	if ts.backend != nil && ts.backendKey == key {
		return ts.backend, nil
	}
	b, err := newBackend(t)
	if err != nil {
		return nil, err
	}
	ts.backend, ts.backendKey = b, key
	return b, nil
}

// failAll records err against every desired object of a target that could
// not be synced at all, typically because it is unreachable.
func (e *Engine) failAll(ctx context.Context, d Desired, hashes map[Ref]string, attempts int, err error) {
	for _, o := range d.Objects {
		ref := RefOf(o)
		e.record(ctx, Status{Target: d.Target.Name, Ref: ref, State: StateFailed, Error: err.Error(), Attempts: attempts, Hash: hashes[ref]})
	}
}

// record sends s to the sink unless it repeats the last recorded status or
// the engine is stopping. A sink failure is logged and counted, and since last is then not updated the
// status is sent again on the next pass.
func (e *Engine) record(ctx context.Context, s Status) {
	if ctx.Err() != nil {
		return // an interrupted pass says nothing about the target
	}
	e.mu.Lock()
	ts := e.targets[s.Target]
	var prev Status
	var known bool
	if ts != nil {
		prev, known = ts.last[s.Ref]
	}
	e.mu.Unlock()
	if known && prev.State == s.State && prev.Error == s.Error && prev.Attempts == s.Attempts && prev.Hash == s.Hash {
		return
	}
	s.At = e.opts.Clock.Now()
	if err := e.sink.RecordStatus(ctx, s); err != nil {
		e.m.statusErrors.Inc()
		e.log.Error("recording status", "target", s.Target, "ref", s.Ref.String(), "state", s.State, "err", err)
		return
	}
	e.mu.Lock()
	if ts != nil {
		if s.State == StateDeleted {
			delete(ts.last, s.Ref)
		} else {
			ts.last[s.Ref] = s
		}
	}
	e.mu.Unlock()
}

func (e *Engine) updateFailing() {
	e.mu.Lock()
	names := make([]string, 0, len(e.targets))
	for name := range e.targets {
		names = append(names, name)
	}
	e.mu.Unlock()
	n := 0
	for _, name := range names {
		if e.limiter.NumRequeues(item{target: name}) > 0 {
			n++
		}
	}
	e.m.failing.Set(float64(n))
}

func resultOf(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// hashObject identifies a version of a desired object. encoding/json sorts
// map keys, so equal objects hash equally.
func hashObject(o *unstructured.Unstructured) string {
	b, err := json.Marshal(o.Object)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func hashTarget(t Target) string {
	b, _ := json.Marshal(t) // Target has only strings, bytes and a pointer to strings
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
