// Command chaos is a soak test of weft under crashes: five real
// `weft site run` processes in a ring with a chord carry persisted events
// (a topic and a queue), HTTP requests and short TCP connections while,
// every few seconds, one transit site is SIGKILLed and restarted from its
// data directory. At the end it stops the kills, waits for every published
// event to arrive and prints what was lost, duplicated and failed. Its last
// line is
//
//	chaos: events published=N delivered=N lost=N duplicates=N http ok=N failed=N tcp ok=N failed=N
//
// Run it through bench/run-chaos.sh, which builds the weft binary. See
// bench/README.md, "Chaos".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type config struct {
	WeftBin string
	// Duration is how long load runs with kills; the drain comes after.
	Duration time.Duration
	// A kill comes KillMin to KillMax after the previous one; the site is
	// restarted DownMin to DownMax after its kill.
	KillMin, KillMax time.Duration
	DownMin, DownMax time.Duration
	// Drain bounds the wait for published events to arrive after the load.
	Drain time.Duration
	// EventRate is the events per second published to each of the topic
	// and the queue, in batches of EventBatch.
	EventRate, EventBatch int
	// HTTPWorkers and TCPWorkers each send one request or open one
	// connection every Pace.
	HTTPWorkers, TCPWorkers int
	Pace                    time.Duration
	// Progress is how often a progress line is printed.
	Progress time.Duration
	Seed     uint64
	// Work holds the sites' data directories and logs; empty: a temporary
	// directory, removed at the end unless Keep.
	Work string
	Keep bool
	// SiteLogLevel is the sites' --log-level.
	SiteLogLevel string
	// Out receives progress and the report, the summary line last.
	Out io.Writer
}

func defaultConfig() config {
	return config{
		Duration: 5 * time.Minute,
		KillMin:  5 * time.Second, KillMax: 10 * time.Second,
		DownMin: time.Second, DownMax: 3 * time.Second,
		Drain:     2 * time.Minute,
		EventRate: 100, EventBatch: 10,
		HTTPWorkers: 2, TCPWorkers: 2, Pace: 20 * time.Millisecond,
		Progress:     10 * time.Second,
		SiteLogLevel: "info",
		Out:          os.Stdout,
	}
}

func main() {
	cfg := defaultConfig()
	minutes := 0.0
	flag.StringVar(&cfg.WeftBin, "weft", "", "path of the weft binary (required)")
	flag.Float64Var(&minutes, "minutes", 5, "minutes of load with kills (the drain comes after)")
	flag.DurationVar(&cfg.KillMin, "kill-min", cfg.KillMin, "shortest time between two kills")
	flag.DurationVar(&cfg.KillMax, "kill-max", cfg.KillMax, "longest time between two kills")
	flag.DurationVar(&cfg.DownMin, "down-min", cfg.DownMin, "shortest time a killed site stays down")
	flag.DurationVar(&cfg.DownMax, "down-max", cfg.DownMax, "longest time a killed site stays down")
	flag.DurationVar(&cfg.Drain, "drain", cfg.Drain, "longest wait for published events to arrive after the load")
	flag.IntVar(&cfg.EventRate, "event-rate", cfg.EventRate, "events per second published to each of the topic and the queue")
	flag.IntVar(&cfg.EventBatch, "event-batch", cfg.EventBatch, "events per publish request")
	flag.IntVar(&cfg.HTTPWorkers, "http-workers", cfg.HTTPWorkers, "HTTP clients, each sending a request every -pace")
	flag.IntVar(&cfg.TCPWorkers, "tcp-workers", cfg.TCPWorkers, "TCP clients, each opening a connection every -pace")
	flag.DurationVar(&cfg.Pace, "pace", cfg.Pace, "pause between a client's requests or connections")
	flag.DurationVar(&cfg.Progress, "progress", cfg.Progress, "interval of progress lines")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "seed of the kill schedule (0: from the clock)")
	flag.StringVar(&cfg.Work, "work", "", "directory for the sites' data and logs (default: a temporary one, removed at the end unless -keep)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the temporary work directory (data and logs) and print where it is")
	flag.StringVar(&cfg.SiteLogLevel, "site-log-level", cfg.SiteLogLevel, "the sites' --log-level")
	flag.Parse()
	if cfg.WeftBin == "" {
		fmt.Fprintln(os.Stderr, "bench/chaos: -weft is required (bench/run-chaos.sh builds it)")
		os.Exit(2)
	}
	cfg.Duration = time.Duration(minutes * float64(time.Minute))
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/chaos:", err)
		os.Exit(1)
	}
	if !rep.ok() {
		os.Exit(1)
	}
}
