// Command tcp compares one TCP service reached directly, through two weft
// sites joined by a link, and through two HAProxy instances joined by mutual
// TLS: bulk throughput of one stream, new connections per second, and
// latency of 1 KiB request/response on 32 connections. Everything runs on
// 127.0.0.1; the servers are in this process, the proxies are child
// processes that are stopped at exit. See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var (
		cfg      config
		jsonPath string
	)
	flag.StringVar(&cfg.WeftBin, "weft", "", "path of the weft binary (required)")
	flag.StringVar(&cfg.WeftUnsealedBin, "weft-unsealed", "", "path of weft built from the same tree with -tags weft_bench_unsealed: adds that path, to measure what sealing costs")
	flag.StringVar(&cfg.HAProxyBin, "haproxy", "haproxy", "path of haproxy")
	flag.BoolVar(&cfg.HAProxyPlain, "haproxy-plain", false, "also measure two HAProxy instances joined by plain TCP (no TLS): the floor of a two-process relay")
	flag.Int64Var(&cfg.BulkBytes, "bulk-bytes", 1<<30, "bytes sent per bulk transfer")
	flag.DurationVar(&cfg.ConnDuration, "conn-duration", 4*time.Second, "duration of each new-connection measurement")
	flag.IntVar(&cfg.Dialers, "dialers", 8, "concurrent dialers in the new-connection test")
	flag.DurationVar(&cfg.LatDuration, "latency-duration", 4*time.Second, "duration of each latency measurement")
	flag.IntVar(&cfg.LatConns, "latency-conns", 32, "concurrent connections in the latency test")
	flag.IntVar(&cfg.ReqSize, "request-bytes", 1024, "request (and response) size in the latency test")
	flag.IntVar(&cfg.Rounds, "rounds", 3, "repetitions of every measurement on every path; the median is reported")
	flag.BoolVar(&cfg.Quick, "quick", false, "smoke run of a few seconds: 64 MiB bulk, 1 s per test, 1 round (overrides the size flags)")
	flag.StringVar(&cfg.WeftRevision, "weft-revision", "", "revision to report for the weft binary when it carries no VCS stamp (built with -buildvcs=false)")
	flag.StringVar(&jsonPath, "json", "", "also write the results as JSON to this file")
	flag.Parse()
	if cfg.Quick {
		cfg.BulkBytes, cfg.ConnDuration, cfg.LatDuration, cfg.Rounds = 64<<20, time.Second, time.Second, 1
	}
	cfg.Log = os.Stderr

	// A signal cancels the run; run's deferred cleanup then stops the
	// proxies before the process exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/tcp:", err)
		os.Exit(1)
	}
	rep.Command = os.Args
	fmt.Println()
	rep.writeTable(os.Stdout)
	if jsonPath != "" {
		if err := rep.writeJSON(jsonPath); err != nil {
			fmt.Fprintln(os.Stderr, "bench/tcp:", err)
			os.Exit(1)
		}
		fmt.Printf("\nJSON written to %s\n", jsonPath)
	}
}
