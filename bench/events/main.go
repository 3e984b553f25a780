// Command events compares cross-site publish/subscribe through two weft
// sites joined by a link with two nats-server processes joined by a gateway
// (a supercluster): throughput and latency of 256-byte events, volatile
// (weft volatile topic, NATS core) and persisted (weft persisted topic,
// JetStream file store with async publish). Publishers are at the first
// site/server, the subscriber at the second. Everything runs on 127.0.0.1;
// child processes are stopped at exit. See bench/README.md, "Events".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"weft.dev/weft/bench/internal/benchproc"
)

type config struct {
	WeftBin, NATSBin string
	Duration         time.Duration // of each throughput measurement
	LatDuration      time.Duration // of each latency measurement
	Workers, Batch   int
	// Runs are the runs to make, of weft (its --events-sync always and
	// interval) and of NATS (JetStream's default sync and "fsync");
	// empty: all four.
	Runs []string
	// PostClient is the HTTP client of the POST rows: "lean" (leanPoster)
	// or "net/http".
	PostClient string
	Log        io.Writer
}

// allRuns are config.Runs's values, in the order they run.
var allRuns = []string{"always", "interval", "nats", "nats-fsync"}

// report holds one result per system and mode.
type report struct {
	cfg     config
	results map[string]result // "weft volatile", "nats volatile", ...
}

func main() {
	var cfg config
	quick := false
	flag.StringVar(&cfg.WeftBin, "weft", "", "path of the weft binary (required)")
	flag.StringVar(&cfg.NATSBin, "nats-server", "nats-server", "path of nats-server")
	flag.DurationVar(&cfg.Duration, "duration", 6*time.Second, "publishing time of each throughput measurement")
	flag.DurationVar(&cfg.LatDuration, "latency-duration", 3*time.Second, "duration of each latency measurement")
	flag.IntVar(&cfg.Workers, "workers", 4, "concurrent publishers (each its own connection)")
	flag.IntVar(&cfg.Batch, "batch", 100, "events per publish request (weft batch; NATS publishes then waits for Flush or PubAcks)")
	flag.StringVar(&cfg.PostClient, "post-client", "lean", "HTTP client of weft's POST rows: lean (one keep-alive connection per publisher, written and read in its goroutine, as wrk) or net/http")
	flag.BoolVar(&quick, "quick", false, "smoke run: 1 s per measurement")
	runs := flag.String("runs", strings.Join(allRuns, ","), "the runs to make, comma-separated: weft's --events-sync always and interval, NATS with JetStream's default sync and with fsync (rows of runs left out are empty)")
	flag.Parse()
	for r := range strings.SplitSeq(*runs, ",") {
		if !slices.Contains(allRuns, r) {
			fmt.Fprintf(os.Stderr, "bench/events: unknown run %q in -runs; the runs are %s\n", r, strings.Join(allRuns, ","))
			os.Exit(2)
		}
		cfg.Runs = append(cfg.Runs, r)
	}
	if quick {
		cfg.Duration, cfg.LatDuration = time.Second, time.Second
	}
	cfg.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/events:", err)
		os.Exit(1)
	}
	rep.writeTable(os.Stdout)
}

// run measures weft, stops its sites, then measures NATS, so that the idle
// processes of one system do not share the CPUs with the other's test. weft
// runs twice: with --events-sync always (the default; volatile and
// persisted), then interval (persisted only); NATS twice too, JetStream with
// its default sync and with sync_interval: always.
func run(ctx context.Context, cfg config) (*report, error) {
	rep := &report{cfg: cfg, results: map[string]result{}}
	do := func(r string) bool { return len(cfg.Runs) == 0 || slices.Contains(cfg.Runs, r) }
	if do("always") {
		if err := runWeft(ctx, cfg, rep, "always"); err != nil {
			return nil, fmt.Errorf("weft: %w", err)
		}
	}
	if do("interval") {
		if err := runWeft(ctx, cfg, rep, "interval"); err != nil {
			return nil, fmt.Errorf("weft with --events-sync interval: %w", err)
		}
	}
	if do("nats") {
		if err := runNATS(ctx, cfg, rep, false); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
	}
	if do("nats-fsync") {
		if err := runNATS(ctx, cfg, rep, true); err != nil {
			return nil, fmt.Errorf("nats with sync_interval always: %w", err)
		}
	}
	return rep, nil
}

// runWeft measures weft with the sites' --events-sync mode sync: volatile
// and persisted rows for "always", persisted rows named "weft-interval"
// for "interval".
func runWeft(ctx context.Context, cfg config, rep *report, sync string) error {
	cl := &benchproc.Cleanups{}
	defer cl.Run()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evA, evB, dirA, _, err := weftSites(ctx, cl, cfg.WeftBin, "--events-sync", sync)
	if err != nil {
		return err
	}
	if _, err := benchproc.WeftCLI(ctx, cfg.WeftBin, dirA, "topic", "create", "bench.p", "--delivery", "persisted"); err != nil {
		return err
	}
	type mode struct{ name, topic string }
	modes := []mode{{"weft volatile", "bench.v"}, {"weft persisted", "bench.p"}}
	if sync != "always" {
		modes = []mode{{"weft-" + sync + " persisted", "bench.p"}}
	}
	for _, m := range modes {
		s := newSink()
		if err := weftSubscribe(ctx, evB+"/v1/topics/"+m.topic+"/events", s); err != nil {
			return err
		}
		url := evA + "/v1/topics/" + m.topic
		pubs := make([]publisher, cfg.Workers)
		for i := range pubs {
			if pubs[i], err = weftPublisher(cl, url, cfg.PostClient); err != nil {
				return err
			}
		}
		if err := measure(ctx, cfg, rep, m.name, s, pubs); err != nil {
			return err
		}
		for i := range pubs {
			if pubs[i], err = weftStreamPublisher(ctx, cl, "ws"+strings.TrimPrefix(url, "http")+"/publish"); err != nil {
				return err
			}
		}
		if err := measure(ctx, cfg, rep, m.name+" stream", s, pubs); err != nil {
			return err
		}
	}
	return nil
}

// runNATS measures core NATS and JetStream; with syncAlways only JetStream,
// fsyncing every write as weft's persisted delivery does, reported as
// "nats-fsync".
func runNATS(ctx context.Context, cfg config, rep *report, syncAlways bool) error {
	cl := &benchproc.Cleanups{}
	defer cl.Run()
	urlA, urlB, _, err := natsServers(ctx, cl, cfg.NATSBin, syncAlways)
	if err != nil {
		return err
	}
	sub, err := nats.Connect(urlB)
	if err != nil {
		return err
	}
	defer sub.Close()
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range cfg.Workers {
		c, err := nats.Connect(urlA)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}

	pubs := make([]publisher, cfg.Workers)
	if !syncAlways {
		if err := natsVolatile(ctx, cfg, rep, sub, conns, pubs); err != nil {
			return err
		}
	}

	// Persisted: a file-store stream placed in cluster A, published to
	// asynchronously at A, consumed at B by an ordered push consumer.
	jsA, err := jetstream.New(conns[0])
	if err != nil {
		return err
	}
	// The meta leader may not yet know cluster A's server right after
	// JetStream first answered ("no suitable peers for placement").
	err = benchproc.Poll(ctx, 20*time.Second, "stream BENCH to be created", func() error {
		_, err := jsA.CreateStream(ctx, jetstream.StreamConfig{
			Name: "BENCH", Subjects: []string{"bench.p"}, Storage: jetstream.FileStorage,
			Replicas: 1, Placement: &jetstream.Placement{Cluster: "A"},
		})
		return err
	})
	if err != nil {
		return err
	}
	jsB, err := jetstream.New(sub)
	if err != nil {
		return err
	}
	cons, err := jsB.OrderedConsumer(ctx, "BENCH", jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return err
	}
	sp := newSink()
	cc, err := cons.Consume(func(m jetstream.Msg) { sp.got(m.Data()) })
	if err != nil {
		return err
	}
	defer cc.Stop()
	name := "nats persisted"
	if syncAlways {
		name = "nats-fsync persisted"
	}
	for i, c := range conns {
		js, err := jetstream.New(c, jetstream.WithPublishAsyncMaxPending(4*cfg.Batch))
		if err != nil {
			return err
		}
		pubs[i] = jsPublisher(js, "bench.p")
	}
	if err := measure(ctx, cfg, rep, name, sp, pubs); err != nil {
		return err
	}
	// As `nats bench js pub --async`: many PubAcks outstanding, no wait
	// per batch.
	for i, c := range conns {
		js, err := jetstream.New(c, jetstream.WithPublishAsyncMaxPending(asyncInFlight))
		if err != nil {
			return err
		}
		pubs[i] = jsAsyncPublisher(js, "bench.p")
	}
	return measure(ctx, cfg, rep, name+" async", sp, pubs)
}

// asyncInFlight is how many PubAcks a JetStream publisher of the async rows
// waits for at most, nats.go's default.
const asyncInFlight = 4000

// natsVolatile measures core NATS, publishers at A, subscriber at B. The
// pending limits are raised so that the harness's own subscriber is not the
// slow consumer.
func natsVolatile(ctx context.Context, cfg config, rep *report, sub *nats.Conn, conns []*nats.Conn, pubs []publisher) error {
	s := newSink()
	ns, err := sub.Subscribe("bench.v", func(m *nats.Msg) { s.got(m.Data) })
	if err != nil {
		return err
	}
	ns.SetPendingLimits(-1, -1)
	if err := sub.Flush(); err != nil {
		return err
	}
	for i, c := range conns {
		pubs[i] = natsCorePublisher(c, "bench.v")
	}
	if err := measure(ctx, cfg, rep, "nats volatile", s, pubs); err != nil {
		return err
	}
	for i, c := range conns {
		pubs[i] = natsAsyncPublisher(c, "bench.v")
	}
	return measure(ctx, cfg, rep, "nats volatile async", s, pubs)
}

// measure waits until an event published at the first site reaches the
// subscriber (interest has propagated), then runs the throughput and the
// latency test.
func measure(ctx context.Context, cfg config, rep *report, name string, s *sink, pubs []publisher) error {
	fmt.Fprintf(cfg.Log, "%s: waiting for interest\n", name)
	err := benchproc.Poll(ctx, 30*time.Second, name+" subscriber interest", func() error {
		if err := pubs[0](ctx, 1); err != nil {
			return err
		}
		if s.count.Load() == 0 {
			return fmt.Errorf("no event at the subscriber yet")
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Probes published before interest arrived may still be on their way
	// (a persisted one is delivered late, not dropped): let them land so
	// that they are not counted in the throughput.
	for prev := int64(-1); prev != s.count.Load(); {
		prev = s.count.Load()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	fmt.Fprintf(cfg.Log, "%s: throughput, %d publishers x %d-event batches for %v\n", name, len(pubs), cfg.Batch, cfg.Duration)
	r, err := throughput(ctx, s, pubs, cfg.Batch, cfg.Duration)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Log, "%s: latency, one event in flight for %v\n", name, cfg.LatDuration)
	l, err := latency(ctx, s, pubs[0], cfg.LatDuration)
	if err != nil {
		return err
	}
	r.P50, r.P99, r.LatLost = l.P50, l.P99, l.LatLost
	rep.results[name] = r
	// As it comes, so that a run that fails later still shows it.
	fmt.Fprintf(cfg.Log, "%s: %.0f msgs/s, %d missing, p50 %v, p99 %v\n", name, r.Throughput, r.Lost, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
	return nil
}

func (r *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "\n256-byte events, publishers at site/server A, subscriber at B; %d publishers x %d-event batches for %v; latency: one event in flight for %v\n\n",
		r.cfg.Workers, r.cfg.Batch, r.cfg.Duration, r.cfg.LatDuration)
	rows := []string{"weft volatile", "weft volatile stream", "nats volatile", "nats volatile async",
		"weft persisted", "weft persisted stream", "nats-fsync persisted", "nats-fsync persisted async",
		"weft-interval persisted", "weft-interval persisted stream", "nats persisted", "nats persisted async"}
	fmt.Fprintf(w, "%-31s %10s %9s %10s %10s %9s\n", "system, delivery", "msgs/s", "missing", "p50", "p99", "lat lost")
	for _, k := range rows {
		x, ok := r.results[k]
		if !ok {
			continue // its run was left out (-runs)
		}
		fmt.Fprintf(w, "%-31s %10.0f %9d %10s %10s %9d\n", k, x.Throughput, x.Lost, x.P50.Round(time.Microsecond), x.P99.Round(time.Microsecond), x.LatLost)
	}
	fmt.Fprintf(w, "\n%-58s %8s %8s %8s\n", "ratio", "msgs/s", "p50", "p99")
	for _, c := range [][2]string{{"weft volatile", "nats volatile"}, {"weft volatile", "nats volatile async"}, {"weft volatile stream", "nats volatile async"},
		{"weft persisted", "nats-fsync persisted"}, {"weft persisted stream", "nats-fsync persisted async"},
		{"weft-interval persisted", "nats persisted"}, {"weft-interval persisted stream", "nats persisted async"}} {
		a, okA := r.results[c[0]]
		b, okB := r.results[c[1]]
		if !okA || !okB {
			continue
		}
		fmt.Fprintf(w, "%-58s %8.2f %8.2f %8.2f\n", c[0]+" / "+c[1], a.Throughput/b.Throughput, float64(a.P50)/float64(b.P50), float64(a.P99)/float64(b.P99))
	}
	fmt.Fprint(w, `
weft ... stream: publish streams (WebSockets of batches, up to 16 unanswered each), as
weft bench pub publishes; weft volatile/persisted: one POST per batch, waiting for the 202.
msgs/s: delivered at B per second, first publish to last receipt (higher is better).
missing: published minus received at B (negative: duplicates). p50/p99: publish to
receipt at B, one event in flight (lower is better); lat lost: not received in 2 s.
nats volatile: a Flush (server round trip) after each batch; nats volatile async: none,
as nats bench pub (nats.go flushes in the background). nats persisted = JetStream, file
store, async publish waiting for each batch's PubAcks, default sync (fsync every 2 min);
nats persisted async: up to 4000 PubAcks outstanding per publisher, as nats bench js pub --async;
nats-fsync = the same with sync_interval: always (fsync before every PubAck).
weft persisted: sites run with --events-sync always (the default): A fsyncs before its
202, B before acknowledging A and delivering; compared with nats-fsync. weft-interval:
--events-sync interval (written to the file before acknowledging, fsync every 100 ms);
compared with JetStream's default sync.
`)
}
