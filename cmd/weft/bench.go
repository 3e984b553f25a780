package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/events/benchclient"
)

// benchFlags are what bench pub and bench sub share.
type benchFlags struct {
	credential   string
	topic, queue bool
	msgs         int
}

func (f *benchFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.msgs, "msgs", 100000, "events to publish in all (pub), or to wait for on each subscription (sub; a queue: on all together)")
	cmd.Flags().BoolVar(&f.topic, "topic", false, "NAME must be a topic")
	cmd.Flags().BoolVar(&f.queue, "queue", false, "NAME must be a queue")
	cmd.MarkFlagsMutuallyExclusive("topic", "queue")
	addCredentialFlag(cmd, &f.credential)
}

func (f *benchFlags) config(name string) (benchclient.Config, error) {
	base, err := eventsURL()
	if err != nil {
		return benchclient.Config{}, err
	}
	auth, err := authorization(f.credential)
	return benchclient.Config{Base: base, Path: eventPath(name, f.topic, f.queue), Authorization: auth, Msgs: f.msgs}, err
}

// printStats prints the total and, with more than one, each stream's line.
func printStats(name string, total benchclient.Stats, per []benchclient.Stats) {
	fmt.Fprintln(g.stdout, total.Line(name))
	if len(per) > 1 {
		for i, s := range per {
			fmt.Fprintln(g.stdout, s.Line(fmt.Sprintf("%s[%d]", name, i+1)))
		}
	}
}

func newBenchCmd() *cobra.Command {
	var pf benchFlags
	var pc benchclient.PubConfig
	pub := &cobra.Command{
		Use:   "pub NAME [--msgs N] [--size BYTES] [--pubs N] [--batch N]",
		Short: "Publish events as fast as the site acknowledges them, and print the rate",
		Long: `Publish --msgs events of --size bytes of data to a topic or queue at this site,
from --pubs publish streams (WebSockets carrying batches of --batch events,
many batches in flight) and print the rate at which the site acknowledged
them (msgs/s, MiB/s of data) and the percentiles of a batch's time from
sending to acknowledgement. Run 'weft bench sub' first, at this site or
another, to measure delivery; its interest takes a moment to reach this site.`,
		Example: `  weft --site ~/weft/west bench sub bench --msgs 100000 &
  weft --site ~/weft/east bench pub bench --msgs 100000 --size 256 --pubs 4`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if pc.Config, err = pf.config(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "publishing %d events of %d bytes to %s from %d streams, batches of %d\n", pc.Msgs, pc.Size, args[0], pc.Pubs, pc.Batch)
			total, per, err := benchclient.Pub(cmd.Context(), pc)
			if total.Msgs+total.Refused > 0 {
				printStats("pub", total, per)
			}
			return err
		},
	}
	pf.add(pub)
	pub.Flags().IntVar(&pc.Size, "size", 128, "bytes of data per event (its JSON attributes come on top)")
	pub.Flags().IntVar(&pc.Pubs, "pubs", 1, "publish streams, each publishing its share of --msgs")
	pub.Flags().IntVar(&pc.Batch, "batch", 100, "events per batch")

	var sf benchFlags
	var sc benchclient.SubConfig
	sub := &cobra.Command{
		Use:   "sub NAME [--msgs N] [--subs N]",
		Short: "Subscribe and wait for a benchmark's events, and print the rate and latency",
		Long: `Open --subs subscriptions to a topic or queue at this site, wait for --msgs
events of 'weft bench pub' on each (a queue: on all together), and print the
rate at which they arrived (first to last) and the percentiles of their time
from publish to receipt (on different hosts, the clocks' difference is in
it). What has not come once nothing came for --idle counts as missing.`,
		Example: `  weft --site ~/weft/west bench sub bench --msgs 100000 --subs 2`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if sc.Config, err = sf.config(args[0]); err != nil {
				return err
			}
			sc.Ready = func() {
				fmt.Fprintf(g.stderr, "subscribed to %s %d times; waiting for %d events each\n", args[0], sc.Subs, sc.Msgs)
			}
			total, per, err := benchclient.Sub(cmd.Context(), sc)
			printStats("sub", total, per)
			return err
		},
	}
	sf.add(sub)
	sub.Flags().IntVar(&sc.Subs, "subs", 1, "subscriptions")
	sub.Flags().DurationVar(&sc.Idle, "idle", 5*time.Second, "stop waiting once no event came for this long after the first")
	return group(&cobra.Command{
		Use:   "bench",
		Short: "Measure this site's event API as 'nats bench' measures NATS",
		Example: `  weft --site ~/weft/west bench sub bench --msgs 100000 &
  weft --site ~/weft/east bench pub bench --msgs 100000 --size 256 --pubs 4`,
	}, pub, sub)
}
