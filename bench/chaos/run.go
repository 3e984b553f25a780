package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
)

// runner is one run of the harness.
type runner struct {
	cfg   config
	start time.Time
	m     *mesh
	b     *backends
	tl    *timeline
	pubs  map[string]*publisher // by address name
	http  attempts
	tcp   attempts

	outMu sync.Mutex
}

// say prints a line of the run, marked with the time since the start.
func (r *runner) say(format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprintf(r.cfg.Out, "chaos: %6.1fs %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// run sets up the network, runs the load and the kills for cfg.Duration,
// drains and reports. Every child process and goroutine has ended when it
// returns, also on error.
func run(ctx context.Context, cfg config) (rep *report, err error) {
	r := &runner{cfg: cfg, start: time.Now()}
	cl := &benchproc.Cleanups{}
	defer cl.Run()
	work, kept := cfg.Work, "kept"
	if work == "" {
		if work, err = os.MkdirTemp("", "weft-chaos-"); err != nil {
			return nil, err
		}
		if !cfg.Keep {
			cl.Add(func() { os.RemoveAll(work) })
			kept = "removed at the end"
		}
	}
	r.say("seed %d; sites' data and logs in %s (%s)", cfg.Seed, work, kept)
	r.tl = newTimeline(siteNames)
	if r.m, err = startMesh(ctx, cl, cfg, work, r.tl); err != nil {
		return nil, err
	}
	if r.b, err = startBackends(cl); err != nil {
		return nil, err
	}
	httpListen, tcpListen, err := r.m.configure(ctx, r.b)
	if err != nil {
		return nil, err
	}
	if err := r.waitConverged(ctx); err != nil {
		return nil, err
	}
	evURL, err := r.m.eventsURL(publisherSite)
	if err != nil {
		return nil, err
	}
	if err := r.probe(ctx, evURL); err != nil {
		return nil, err
	}
	r.say("network up: ring a-b-c-d-e-a and a-c; publisher %s, consumer %s, clients %s; killing %v",
		publisherSite, consumerSite, clientSite, killable())

	// Idle connections are closed at the end, so that no transport
	// goroutine outlives the run.
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	r.pubs = map[string]*publisher{
		"topic": {url: evURL + "/v1/topics/" + topicName, prefix: "t", tally: r.b.topic},
		"queue": {url: evURL + "/v1/queues/" + queueName, prefix: "q", tally: r.b.queue},
	}
	for _, p := range r.pubs {
		p.rate, p.batch = cfg.EventRate, cfg.EventBatch
		p.client = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// On any return: cancel, then wait for every goroutine, then cl.Run.
	defer wg.Wait()
	defer cancel()
	errc := make(chan error, 8)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		cancel()
	}
	goFunc := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}

	stopLoad, stopChaos, stopWatch := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var loadWG sync.WaitGroup
	load := func(f func()) {
		loadWG.Add(1)
		goFunc(func() {
			defer loadWG.Done()
			f()
		})
	}
	for _, p := range r.pubs {
		load(func() {
			if err := p.run(ctx, stopLoad); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("publishing to %s: %w", p.url, err))
			}
		})
	}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range cfg.HTTPWorkers {
		c := &httpClient{url: "http://" + httpListen, client: hc, stats: &r.http}
		load(func() { c.run(ctx, stopLoad, cfg.Pace) })
	}
	for range cfg.TCPWorkers {
		c := &tcpClient{addr: tcpListen, stats: &r.tcp}
		load(func() { c.run(ctx, stopLoad, cfg.Pace) })
	}
	goFunc(func() { r.watch(ctx, stopWatch) })
	goFunc(func() { r.stallWatch(stopWatch) })
	goFunc(func() { r.progressLoop(ctx, stopWatch) })
	chaosDone := make(chan struct{})
	goFunc(func() {
		defer close(chaosDone)
		if err := r.chaos(ctx, stopChaos); err != nil && ctx.Err() == nil {
			fail(err)
		}
	})

	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	close(stopChaos)
	close(stopLoad)
	r.say("load and kills stopping")
	select {
	case <-chaosDone:
	case <-ctx.Done():
	}
	loadWG.Wait()
	if err := firstErr(ctx, errc); err != nil {
		return nil, err
	}
	r.say("draining: waiting up to %v for every published event", cfg.Drain)
	err = benchproc.Poll(ctx, cfg.Drain, "every published event to arrive", func() error {
		t, q := r.b.topic.counts(), r.b.queue.counts()
		if n := len(t.lost) + len(q.lost); n > 0 {
			return fmt.Errorf("%d topic and %d queue events missing", len(t.lost), len(q.lost))
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		r.say("drain: %v", err)
	} else {
		r.say("drained")
	}
	close(stopWatch)
	cancel()
	wg.Wait()
	rep = r.report()
	rep.write(cfg.Out)
	return rep, nil
}

// firstErr is the first error a goroutine failed with, or ctx's.
func firstErr(ctx context.Context, errc chan error) error {
	select {
	case err := <-errc:
		return err
	default:
		return ctx.Err()
	}
}

// waitConverged waits until the client's site sees every site and every
// connector.
func (r *runner) waitConverged(ctx context.Context) error {
	return benchproc.Poll(ctx, 30*time.Second, clientSite+" to see every site and connector", func() error {
		up, _, _ := r.tl.expect()
		v, err := r.m.view(ctx, clientSite)
		if err != nil {
			return err
		}
		if how := v.mismatch(clientSite, up); how != "" {
			return errors.New(how)
		}
		return nil
	})
}

// probe publishes unaccounted events to the topic and the queue until one
// of each reaches the sink: the consumer's interest has then reached the
// publisher.
func (r *runner) probe(ctx context.Context, evURL string) error {
	for _, x := range []struct {
		path string
		t    *tally
	}{{"/v1/topics/" + topicName, r.b.topic}, {"/v1/queues/" + queueName, r.b.queue}} {
		p := &publisher{url: evURL + x.path, client: &http.Client{Timeout: 10 * time.Second}}
		n := 0
		err := benchproc.Poll(ctx, 30*time.Second, "a probe event at the sink", func() error {
			if x.t.probesSeen() > 0 {
				return nil
			}
			n++
			// Publishing before the interest is known may be refused (no
			// consumer yet): that is what the probe waits out.
			if err := p.post(ctx, batchBody([]string{fmt.Sprintf("%s%d", probePrefix, n)})); err != nil {
				return err
			}
			return errors.New("no probe at the sink yet")
		})
		p.client.CloseIdleConnections()
		if err != nil {
			return err
		}
	}
	return nil
}

// watch reads the client's site's view of the network every 100 ms until
// stop, to tell when it has converged after each change.
func (r *runner) watch(ctx context.Context, stop <-chan struct{}) {
	paced(stop, 100*time.Millisecond, func() {
		up, restarting, at := r.tl.expect()
		v, err := r.m.view(ctx, clientSite)
		if err == nil && v.mismatch(clientSite, up) == "" {
			r.tl.matched(at, restarting)
		}
	})
}

// stallWatch records the times the harness got no CPU for over a second:
// on a machine that busy the sites starve too, and may miss heartbeats.
func (r *runner) stallWatch(stop <-chan struct{}) {
	last := time.Now()
	paced(stop, 100*time.Millisecond, func() {
		now := time.Now()
		if gap := now.Sub(last); gap > time.Second {
			r.tl.stalled(gap)
		}
		last = now
	})
}

// chaos kills a random killable site every KillMin to KillMax and restarts
// it DownMin to DownMax later, until stop. A site it killed is always
// restarted before it returns.
func (r *runner) chaos(ctx context.Context, stop <-chan struct{}) error {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0))
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	victims := killable()
	next := time.Now().Add(between(r.cfg.KillMin, r.cfg.KillMax))
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(next)):
		}
		next = time.Now().Add(between(r.cfg.KillMin, r.cfg.KillMax))
		s := r.m.sites[victims[rng.IntN(len(victims))]]
		r.tl.killing(s.name)
		r.m.kill(s)
		r.say("SIGKILL %s", s.name)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(between(r.cfg.DownMin, r.cfg.DownMax)):
		}
		r.tl.restart()
		began := time.Now()
		if err := r.m.start(ctx, s); err != nil {
			return fmt.Errorf("restarting %s: %w", s.name, err)
		}
		r.tl.ready(s.name)
		r.say("restarted %s (ready after %v)", s.name, time.Since(began).Round(time.Millisecond))
	}
}

// progressLoop prints a progress line every cfg.Progress until stop.
func (r *runner) progressLoop(ctx context.Context, stop <-chan struct{}) {
	paced(stop, r.cfg.Progress, func() { r.say("%s", r.progress()) })
}

func (r *runner) progress() string {
	var b strings.Builder
	t, q := r.b.topic.counts(), r.b.queue.counts()
	fmt.Fprintf(&b, "topic %d/%d queue %d/%d ", t.delivered, t.published, q.delivered, q.published)
	hok, hf := r.http.totals()
	tok, tf := r.tcp.totals()
	fmt.Fprintf(&b, "delivered/published; http ok=%d failed=%d; tcp ok=%d failed=%d; down %v", hok, hf, tok, tf, r.tl.down())
	return b.String()
}
