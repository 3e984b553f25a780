package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/buildinfo"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/kube"
	"weft.dev/weft/internal/observe"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/site"
)

// logFlags are the logging flags of the long-running commands, site run and
// controller run alike.
type logFlags struct{ format, level string }

func (l *logFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.format, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
}

// logger makes the logger and logs, first, which weft this is.
func (l *logFlags) logger(what string) (*slog.Logger, error) {
	log, err := observe.NewLogger(os.Stderr, l.format, l.level)
	if err != nil {
		return nil, err
	}
	log.Info(what+" starting", buildinfo.LogAttrs()...)
	return log, nil
}

func newSiteCmd() *cobra.Command {
	var (
		o        site.Options
		lf       logFlags
		tf       traceFlags
		ko       kube.Options
		k8s      bool
		syncMode string
	)
	run := &cobra.Command{
		Use:   "run --data DIR [--name NAME]",
		Short: "Run a site in the foreground until SIGTERM or SIGINT",
		Long: `Run a site in the foreground until SIGTERM or SIGINT. It keeps its identity,
links, services and events under --data, and writes there the addresses of its
admin API (admin.addr) and event API (events.addr) and the admin credential
(admin.token): other weft commands find the site with --site DIR.`,
		Example: `  # first start: a name is required
  weft site run --name east --data ~/weft/east
  # reachable from other hosts
  weft site run --name east --data ~/weft/east --link-listen 0.0.0.0:7071 --advertise east.example.com:7071
  weft site run --name east --data ~/weft/east --log-format json
  # Kubernetes mode, from outside the cluster (in a pod: no --kubeconfig, no --namespace)
  weft site run --kubernetes --name east --data /tmp/east --namespace shop --kubeconfig ~/.kube/config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.data == "" {
				return errors.New("site run needs --data DIR, the directory where the site keeps its state")
			}
			log, err := lf.logger("weft site")
			if err != nil {
				return err
			}
			o.Logger, o.DataDir = log, g.data
			if o.EventsStore.Sync, err = store.ParseSync(syncMode); err != nil {
				return fmt.Errorf("--events-sync: %w", err)
			}
			if o.Tracing, err = tf.start(cmd.Context(), "weft", log); err != nil {
				return err
			}
			defer tf.stop(o.Tracing, log)
			if k8s {
				return runKubernetes(cmd.Context(), o, ko)
			}
			s, err := site.New(o)
			if err != nil {
				return err
			}
			return s.Run(cmd.Context())
		},
	}
	f := run.Flags()
	f.StringVar(&o.Name, "name", "", "site name (required on first start; must match afterwards)")
	f.StringVar(&o.AdminAddr, "admin", "127.0.0.1:0", "admin API address (port 0 picks a free port, written to DATA/admin.addr)")
	f.StringVar(&o.EventsAddr, "events", "127.0.0.1:0", "event API address: CloudEvents over HTTP (port 0 picks a free port, written to DATA/events.addr)")
	f.StringVar(&o.EventsAuth, "events-auth", site.EventsAuthAuto, "when the event API requires a credential (see weft credential create): auto (when it listens beyond loopback), on or off")
	run.RegisterFlagCompletionFunc("events-auth", cobra.FixedCompletions([]string{site.EventsAuthAuto, site.EventsAuthOn, site.EventsAuthOff}, cobra.ShellCompDirectiveNoFileComp))
	f.StringVar(&syncMode, "events-sync", string(store.SyncAlways), "when a persisted event is durable before the site acknowledges it: always (fsync first; nothing acknowledged is lost, even on a power loss) or interval (written to the file first, so a killed process loses nothing; fsync every --events-sync-interval, so a power loss can lose that much)")
	run.RegisterFlagCompletionFunc("events-sync", cobra.FixedCompletions([]string{string(store.SyncAlways), string(store.SyncInterval)}, cobra.ShellCompDirectiveNoFileComp))
	f.DurationVar(&o.EventsStore.Interval, "events-sync-interval", store.DefaultSyncInterval, "with --events-sync interval: how often the event store is fsynced")
	f.StringVar(&o.LinkListen, "link-listen", "127.0.0.1:0", "address that accepts links from other sites")
	f.StringSliceVar(&o.Advertise, "advertise", nil, "link addresses put into tokens (default: the link listener's)")
	f.DurationVar(&o.Link.HeartbeatInterval, "heartbeat", 500*time.Millisecond, "link heartbeat interval")
	f.DurationVar(&o.Link.DeadAfter, "dead-after", 2*time.Second, "a link whose peer is silent this long is torn down")
	f.IntVar(&o.Events.MaxSubscriptions, "max-subscriptions", broker.DefaultMaxSubscriptions, "live event stream subscriptions (SSE, WebSocket) the site holds at once")
	f.IntVar(&o.Events.MaxSubscriptionsPerClient, "max-subscriptions-per-client", broker.DefaultMaxSubscriptionsPerClient, "live event stream subscriptions one client IP address may hold")
	f.IntVar(&o.Events.MaxInterests, "max-interests", broker.DefaultMaxInterests, fmt.Sprintf("distinct topic and queue patterns the site subscribes to network-wide (at most %d)", routing.MaxInterests))
	f.BoolVar(&k8s, "kubernetes", false, "Kubernetes mode: apply the weft resources of --namespace, keep the site's identity in a Secret")
	f.StringVar(&ko.Namespace, "namespace", "", "Kubernetes mode: the namespace to watch (default: the pod's own)")
	f.StringVar(&ko.Kubeconfig, "kubeconfig", "", "Kubernetes mode: kubeconfig file (default: the pod's in-cluster service account)")
	f.StringVar(&ko.Secret, "state-secret", "weft-site-state", "Kubernetes mode: the Secret that keeps the site's identity and links")
	f.StringVar(&ko.PodLabels, "pod-labels", "app.kubernetes.io/name=weft-site", "Kubernetes mode: labels of the site's pods, which listeners' Services select")
	f.StringVar(&ko.ListenerHost, "listener-host", "0.0.0.0", "Kubernetes mode: address listeners without spec.host listen on")
	lf.add(run)
	tf.add(run)
	return group(&cobra.Command{
		Use:   "site",
		Short: "Run a site",
		Example: `  weft site run --name east --data ~/weft/east
  weft --site ~/weft/east site rotate-key`,
	}, run, rotateKeyCmd())
}

// runKubernetes runs a site in Kubernetes mode: its state comes from and
// goes to a Secret, and its configuration from the namespace's resources.
func runKubernetes(ctx context.Context, o site.Options, ko kube.Options) error {
	ko.DataDir, ko.Logger = o.DataDir, o.Logger
	m, err := kube.New(ctx, ko)
	if err != nil {
		return err
	}
	o.Persist = m.Persist
	s, err := site.New(o)
	if err != nil {
		return err
	}
	return m.Run(ctx, s)
}

func newDemoCmd() *cobra.Command {
	var (
		o  site.DemoOptions
		tf traceFlags
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a demo network of three sites on this host, with a service to try",
		Long: `Run a demo network of three sites in this process, east - transit - west, with
an HTTP service at west reachable through a listener at east, and print commands
to try against it. It runs until interrupted; its data goes to a temporary
directory unless --dir is given.`,
		Example: `  weft demo
  weft demo --dir ~/weft/demo --port 9090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Command = demoCommand()
			var err error
			if o.Tracing, err = tf.start(cmd.Context(), "weft", nil); err != nil {
				return err
			}
			defer tf.stop(o.Tracing, nil)
			return site.Demo(cmd.Context(), g.stdout, o)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "keep the sites' data here (default: a temporary directory, removed at exit)")
	cmd.Flags().IntVar(&o.Port, "port", 0, "port of the demo listener (0 picks a free one)")
	tf.add(cmd)
	return cmd
}
