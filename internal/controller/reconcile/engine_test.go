package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTarget is an in-memory target. Tests reach it by the Target's name.
type fakeTarget struct {
	mu      sync.Mutex
	down    bool
	objects map[Ref]*unstructured.Unstructured
	applied []string // "name=value of data.v" in order of Apply
}

var (
	fakesMu sync.Mutex
	fakes   = map[string]*fakeTarget{}
)

func init() {
	RegisterBackend("fake", func(t Target) (Backend, error) {
		fakesMu.Lock()
		defer fakesMu.Unlock()
		f := fakes[t.Name]
		if f == nil {
			return nil, fmt.Errorf("no fake target %q", t.Name)
		}
		return f, nil
	})
}

func newFake(t *testing.T, name string) *fakeTarget {
	f := &fakeTarget{objects: map[Ref]*unstructured.Unstructured{}}
	fakesMu.Lock()
	fakes[name] = f
	fakesMu.Unlock()
	t.Cleanup(func() {
		fakesMu.Lock()
		delete(fakes, name)
		fakesMu.Unlock()
	})
	return f
}

var errDown = errors.New("connection refused")

func (f *fakeTarget) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fakeTarget) Managed(_ context.Context, _ []Ref) ([]Ref, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errDown
	}
	var refs []Ref
	for ref, o := range f.objects {
		if o.GetLabels()[ManagedByLabel] == ManagedByValue {
			refs = append(refs, ref)
		}
	}
	return refs, nil
}

func (f *fakeTarget) Apply(_ context.Context, o *unstructured.Unstructured) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown
	}
	if o.GetName() == "invalid" {
		return errors.New("refused by validation")
	}
	f.objects[RefOf(o)] = o.DeepCopy()
	v, _, _ := unstructured.NestedString(o.Object, "data", "v")
	f.applied = append(f.applied, o.GetName()+"="+v)
	return nil
}

func (f *fakeTarget) Delete(_ context.Context, ref Ref) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown
	}
	delete(f.objects, ref)
	return nil
}

func (f *fakeTarget) names() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]string{}
	for ref, o := range f.objects {
		v, _, _ := unstructured.NestedString(o.Object, "data", "v")
		m[ref.Name] = v
	}
	return m
}

func (f *fakeTarget) appliedLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.applied...)
}

// source is a Source whose state tests replace.
type source struct {
	mu      sync.Mutex
	desired []Desired
	err     error
}

func (s *source) Desired(context.Context) ([]Desired, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.desired, s.err
}

func (s *source) set(d ...Desired) {
	s.mu.Lock()
	s.desired = d
	s.mu.Unlock()
}

// sink keeps every recorded status.
type sink struct {
	mu  sync.Mutex
	all []Status
}

func (s *sink) RecordStatus(_ context.Context, st Status) error {
	s.mu.Lock()
	s.all = append(s.all, st)
	s.mu.Unlock()
	return nil
}

// last returns the latest status per object name.
func (s *sink) last() map[string]Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]Status{}
	for _, st := range s.all {
		m[st.Ref.Name] = st
	}
	return m
}

func (s *sink) states(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, st := range s.all {
		if st.Ref.Name == name {
			out = append(out, st.State)
		}
	}
	return out
}

func cm(name, v string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "ns", "labels": map[string]any{ManagedByLabel: ManagedByValue}},
		"data":     map[string]any{"v": v},
	}}
	return o
}

func fakeDesired(name string, objs ...*unstructured.Unstructured) Desired {
	return Desired{Target: Target{Name: name, Kind: "fake"}, Objects: objs}
}

type harness struct {
	e     *Engine
	src   *source
	sink  *sink
	clock *timerClock
	reg   *prometheus.Registry
}

// timerClock is a fake clock that reports the timers the delaying queue arms,
// which is how a test sees the backoff the engine chose.
type timerClock struct {
	*clocktesting.FakeClock
	timers chan time.Duration
}

func (c *timerClock) NewTimer(d time.Duration) clock.Timer {
	t := c.FakeClock.NewTimer(d)
	c.timers <- d
	return t
}

func (c *timerClock) nextTimer(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.timers:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no timer armed")
		return 0
	}
}

const (
	minBackoff = time.Second
	maxBackoff = 16 * time.Second
)

func newHarness(t *testing.T) *harness {
	h := &harness{src: &source{}, sink: &sink{}, clock: &timerClock{clocktesting.NewFakeClock(time.Unix(1_000_000, 0)), make(chan time.Duration, 100)}, reg: prometheus.NewRegistry()}
	h.e = New(h.src, h.sink, Options{
		MinBackoff: minBackoff, MaxBackoff: maxBackoff, Clock: h.clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: h.reg,
	})
	t.Cleanup(h.e.shutdown)
	return h
}

// step processes exactly one ready item; it fails the test if none is ready,
// since processNext would block.
func (h *harness) step(t *testing.T) {
	t.Helper()
	if h.e.queue.Len() == 0 {
		t.Fatal("no item ready in the queue")
	}
	h.e.processNext(context.Background())
}

// drain processes items until none is ready.
func (h *harness) drain(t *testing.T) {
	t.Helper()
	for i := 0; h.e.queue.Len() > 0; i++ {
		if i > 100 {
			t.Fatal("queue does not drain")
		}
		h.e.processNext(context.Background())
	}
}

// waitQueued polls, with a deadline, until an item becomes ready: the
// delaying queue moves it from its waiting heap in its own goroutine.
func (h *harness) waitQueued(t *testing.T) {
	t.Helper()
	eventually(t, 5*time.Second, "an item to become ready", func() bool { return h.e.queue.Len() > 0 })
}

func TestApplyRecordsStatusAndPrunesUndesired(t *testing.T) {
	h := newHarness(t)
	f := newFake(t, "t-prune")
	stale := cm("stale", "old")
	f.objects[RefOf(stale)] = stale
	unmanaged := cm("hand-made", "x")
	unmanaged.SetLabels(nil)
	f.objects[RefOf(unmanaged)] = unmanaged

	h.src.set(fakeDesired("t-prune", cm("a", "1"), cm("b", "1")))
	h.e.Trigger()
	h.drain(t)

	if got, want := f.names(), map[string]string{"a": "1", "b": "1", "hand-made": "x"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("target holds %v, want %v", got, want)
	}
	for _, name := range []string{"a", "b"} {
		if got := fmt.Sprint(h.sink.states(name)); got != "[pending applied]" {
			t.Errorf("statuses of %s = %s, want [pending applied]", name, got)
		}
	}
	if got := h.sink.last()["stale"]; got.State != StateDeleted {
		t.Errorf("stale object status = %+v, want deleted", got)
	}

	// b is no longer desired: it goes, a stays and is not re-recorded.
	h.src.set(fakeDesired("t-prune", cm("a", "1")))
	h.e.Trigger()
	h.drain(t)
	if got := fmt.Sprint(f.names()); got != "map[a:1 hand-made:x]" {
		t.Fatalf("after removing b the target holds %s", got)
	}
	if got := fmt.Sprint(h.sink.states("b")); got != "[pending applied deleted]" {
		t.Errorf("statuses of b = %s", got)
	}
	if got := fmt.Sprint(h.sink.states("a")); got != "[pending applied]" {
		t.Errorf("unchanged a re-recorded: %s", got)
	}
	if got := testutil.ToFloat64(h.e.m.ops.WithLabelValues("fake", "delete", "ok")); got != 2 {
		t.Errorf("delete ok counter = %v, want 2", got)
	}

	// A target the Source stops returning is emptied, then forgotten.
	h.src.set()
	h.e.Trigger()
	h.drain(t)
	if got := fmt.Sprint(f.names()); got != "map[hand-made:x]" {
		t.Fatalf("after the target left the source it holds %s", got)
	}
	h.e.mu.Lock()
	n := len(h.e.targets)
	h.e.mu.Unlock()
	if n != 0 {
		t.Errorf("engine still tracks %d targets", n)
	}
}

func TestObjectFailureIsRecordedAndRetried(t *testing.T) {
	h := newHarness(t)
	newFake(t, "t-invalid")
	unlabelled := cm("unlabelled", "1")
	unlabelled.SetLabels(nil)
	h.src.set(fakeDesired("t-invalid", cm("good", "1"), cm("invalid", "1"), unlabelled))
	h.e.Trigger()
	h.drain(t)

	last := h.sink.last()
	if last["good"].State != StateApplied {
		t.Errorf("good = %+v", last["good"])
	}
	if s := last["invalid"]; s.State != StateFailed || s.Error != "refused by validation" || s.Attempts != 1 {
		t.Errorf("invalid = %+v", s)
	}
	if s := last["unlabelled"]; s.State != StateFailed || s.Error != ErrNotManaged.Error() {
		t.Errorf("unlabelled = %+v", s)
	}
	if got := h.e.limiter.NumRequeues(item{target: "t-invalid"}); got != 1 {
		t.Errorf("target requeues = %d, want 1", got)
	}
	if got := testutil.ToFloat64(h.e.m.failing); got != 1 {
		t.Errorf("failing targets gauge = %v", got)
	}
	if got := testutil.ToFloat64(h.e.m.syncs.WithLabelValues("fake", "error")); got != 1 {
		t.Errorf("sync error counter = %v", got)
	}
}

// An offline target is retried with growing, capped backoff that triggers do
// not bypass, and once back it receives the current state only.
func TestOfflineTargetGetsCurrentStateNotHistory(t *testing.T) {
	h := newHarness(t)
	h.e.limiter.int64N = func(n int64) int64 { return n - 1 } // no jitter: the full delay
	f := newFake(t, "t-offline")
	f.setDown(true)

	h.src.set(fakeDesired("t-offline", cm("x", "v1")))
	h.e.Trigger()
	h.step(t) // refresh
	h.step(t) // target: fails
	if s := h.sink.last()["x"]; s.State != StateFailed || s.Attempts != 1 || s.Error == "" {
		t.Fatalf("status while offline = %+v", s)
	}

	wantDelays := []time.Duration{1, 2, 4, 8, 16, 16, 16}
	for i, d := range wantDelays {
		d *= time.Second
		// The retry waits exactly the backoff: the delaying queue arms a
		// timer for it. Stepping the clock only once the timer is armed
		// keeps the fake clock from racing the queue's own reading of now.
		if got := h.clock.nextTimer(t); got != d {
			t.Fatalf("retry %d: waits %v, want %v", i, got, d)
		}
		// The desired state moves on while the target is away; the refresh
		// must not queue the target ahead of its backoff.
		h.src.set(fakeDesired("t-offline", cm("x", fmt.Sprintf("v%d", i+2))))
		h.e.Trigger()
		h.step(t)
		if n := h.e.queue.Len(); n != 0 {
			t.Fatalf("retry %d: %d items ready before the backoff elapsed", i, n)
		}
		h.clock.Step(d)
		h.waitQueued(t)
		if i == len(wantDelays)-1 {
			break
		}
		h.step(t) // fails again
		if s := h.sink.last()["x"]; s.Attempts != i+2 {
			t.Fatalf("attempts = %d, want %d", s.Attempts, i+2)
		}
	}

	f.setDown(false)
	h.step(t)
	if got := f.appliedLog(); fmt.Sprint(got) != fmt.Sprintf("[x=v%d]", len(wantDelays)+1) {
		t.Fatalf("target received %v, want only the current state", got)
	}
	if s := h.sink.last()["x"]; s.State != StateApplied || s.Attempts != 0 {
		t.Errorf("status after recovery = %+v", s)
	}
	if got := h.e.limiter.NumRequeues(item{target: "t-offline"}); got != 0 {
		t.Errorf("backoff not reset: %d", got)
	}
	if got := testutil.ToFloat64(h.e.m.failing); got != 0 {
		t.Errorf("failing targets gauge = %v", got)
	}
}

func TestSourceErrorIsRetried(t *testing.T) {
	h := newHarness(t)
	h.src.err = errors.New("store unavailable")
	h.e.Trigger()
	h.step(t)
	if got := testutil.ToFloat64(h.e.m.sourceErrors); got != 1 {
		t.Fatalf("source errors = %v", got)
	}
	if got := h.clock.nextTimer(t); got < minBackoff/2 || got > minBackoff {
		t.Fatalf("source retry in %v, want within [%v, %v]", got, minBackoff/2, minBackoff)
	}
	h.clock.Step(minBackoff)
	h.waitQueued(t)
}

func TestBackoffDelays(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{0, 1}, {1, 2}, {2, 4}, {3, 8}, {4, 10}, {5, 10}, {200, 10}} {
		if got := delay(time.Second, 10*time.Second, tc.n); got != tc.want*time.Second {
			t.Errorf("delay(n=%d) = %v, want %v", tc.n, got, tc.want*time.Second)
		}
	}
	// Jitter stays within [d/2, d] and varies.
	b := newBackoff(time.Second, 8*time.Second)
	seen := map[time.Duration]bool{}
	for range 200 {
		b.Forget(refreshItem)
		for range 3 {
			b.When(refreshItem)
		}
		d := b.When(refreshItem) // fourth failure: 8s nominal
		if d < 4*time.Second || d > 8*time.Second {
			t.Fatalf("jittered delay %v outside [4s, 8s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct delays: no jitter", len(seen))
	}
}

// Run starts and stops its workers cleanly, syncing on its own.
func TestRun(t *testing.T) {
	src := &source{}
	f := newFake(t, "t-run")
	src.set(fakeDesired("t-run", cm("r", "1")))
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	snk := &sink{}
	e := New(src, snk, Options{Clock: clk, Resync: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	eventually(t, 10*time.Second, "r applied", func() bool { return f.names()["r"] == "1" })

	// Drift at the target is repaired by the resync ticker.
	f.mu.Lock()
	clear(f.objects)
	f.mu.Unlock()
	eventually(t, 10*time.Second, "r applied after a retry", func() bool { clk.Step(time.Minute); return f.names()["r"] == "1" })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Stopping is not a failure of the target.
	for _, st := range snk.all {
		if st.State == StateFailed {
			t.Errorf("status recorded while stopping: %+v", st)
		}
	}
}

// An engine that stops, as on a lost leadership, leaves the failing-targets
// gauge at zero: the series is shared with the engine of the next leadership,
// and this replica no longer retries anything.
func TestRunEndResetsFailing(t *testing.T) {
	src := &source{}
	newFake(t, "t-lost").setDown(true)
	src.set(fakeDesired("t-lost", cm("r", "1")))
	reg := prometheus.NewRegistry()
	e := New(src, &sink{}, Options{Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	eventually(t, 10*time.Second, "one failing target", func() bool { return testutil.ToFloat64(e.m.failing) == 1 })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(newMetrics(reg).failing); got != 0 {
		t.Errorf("failing targets after the engine stopped = %v, want 0", got)
	}
}

// eventually polls cond until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}
