package main

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/observe"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/site"
)

func newSiteCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "site", Short: "Run a site"}
	var (
		o                   site.Options
		logFormat, logLevel string
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Run a site in the foreground until SIGTERM or SIGINT",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := observe.NewLogger(os.Stderr, logFormat, logLevel)
			if err != nil {
				return err
			}
			o.Logger, o.DataDir = log, g.data
			s, err := site.New(o)
			if err != nil {
				return err
			}
			return s.Run(cmd.Context())
		},
	}
	f := run.Flags()
	f.StringVar(&o.Name, "name", "", "site name (required on first start)")
	f.StringVar(&o.AdminAddr, "admin", "127.0.0.1:0", "admin API address (port 0 picks a free port)")
	f.StringVar(&o.EventsAddr, "events", "127.0.0.1:0", "event API address: CloudEvents over HTTP (port 0 picks a free port)")
	f.StringVar(&o.LinkListen, "link-listen", "127.0.0.1:0", "address that accepts links from other sites")
	f.StringSliceVar(&o.Advertise, "advertise", nil, "link addresses put into tokens (default: the link listener's)")
	f.DurationVar(&o.Link.HeartbeatInterval, "heartbeat", 500*time.Millisecond, "link heartbeat interval")
	f.DurationVar(&o.Link.DeadAfter, "dead-after", 2*time.Second, "a link whose peer is silent this long is torn down")
	f.IntVar(&o.Events.MaxSubscriptions, "max-subscriptions", broker.DefaultMaxSubscriptions, "live event stream subscriptions (SSE, WebSocket) the site holds at once")
	f.IntVar(&o.Events.MaxSubscriptionsPerClient, "max-subscriptions-per-client", broker.DefaultMaxSubscriptionsPerClient, "live event stream subscriptions one client IP address may hold")
	f.IntVar(&o.Events.MaxInterests, "max-interests", broker.DefaultMaxInterests, fmt.Sprintf("distinct topic and queue patterns the site subscribes to network-wide (at most %d)", routing.MaxInterests))
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	cmd.AddCommand(run)
	return cmd
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Access tokens that let other sites link to this one"}
	var (
		req  site.TokenRequest
		file string
	)
	issue := &cobra.Command{
		Use:   "issue",
		Short: "Issue an access token (YAML) for `weft link create` at another site",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			var tok resource.AccessToken
			if err := c.json(cmd.Context(), "POST", "/v1/tokens", req, &tok); err != nil {
				return err
			}
			b, err := yaml.Marshal(tok)
			if err != nil {
				return err
			}
			if file == "" || file == "-" {
				_, err = os.Stdout.Write(b)
				return err
			}
			return os.WriteFile(file, b, 0o600)
		},
	}
	issue.Flags().StringVar(&req.Expires, "expires", "15m", "how long the token may be redeemed")
	issue.Flags().IntVar(&req.Uses, "uses", 1, "how many times it may be redeemed")
	issue.Flags().StringVarP(&file, "output", "o", "", "write the token to this file (mode 0600) instead of stdout")
	cmd.AddCommand(issue)
	return cmd
}

func newLinkCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "link", Short: "Links to other sites"}
	var (
		name   string
		cost   uint32
		format string
	)
	create := &cobra.Command{
		Use:   "create TOKEN_FILE",
		Short: "Redeem a token issued by another site and wait until the link is up",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			b, err := readFileOrStdin(args[0])
			if err != nil {
				return err
			}
			objs, err := resource.Decode(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if len(objs) != 1 || objs[0].Kind != resource.KindAccessToken {
				return fmt.Errorf("%s does not hold one AccessToken: make one with `weft token issue` at the other site", args[0])
			}
			l := resource.Link{Spec: resource.LinkSpec{Cost: cost, Token: objs[0].Object.(*resource.AccessToken)}}
			l.Name = name
			fmt.Fprintf(os.Stderr, "redeeming token at %s (%s) and waiting for the link...\n",
				l.Spec.Token.Spec.IssuerName, strings.Join(l.Spec.Token.Spec.Addresses, ", "))
			var got resource.Link
			if err := c.json(cmd.Context(), "POST", "/v1/links", l, &got); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "link %s is %s (rtt %s)\n", got.Name, got.Status.State, got.Status.RTT)
			fmt.Println(got.Name)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "link name (default: the issuing site's name)")
	create.Flags().Uint32Var(&cost, "cost", 1, "link cost for routing")
	list := &cobra.Command{
		Use:   "list",
		Short: "List links",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			var out struct{ Items []resource.Link }
			if err := c.json(cmd.Context(), "GET", "/v1/links", nil, &out); err != nil {
				return err
			}
			return output(stdout(), format, out.Items, func(w *tabwriter.Writer) { linkTable(w, out.Items) })
		},
	}
	list.Flags().StringVarP(&format, "output", "o", "", "output format: table, json or yaml")
	del := deleteCmd("links", "Delete a link (at the issuer this revokes it)")
	cmd.AddCommand(create, list, del)
	return cmd
}

func linkTable(w io.Writer, ls []resource.Link) {
	fmt.Fprintln(w, "NAME\tPEER\tSTATE\tCOST\tRTT\tDIRECTION\tERROR")
	for _, l := range ls {
		dir := "out"
		if l.Status.Inbound {
			dir = "in"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", l.Name, l.Status.PeerName, l.Status.State, l.Spec.Cost, l.Status.RTT, dir, l.Status.Error)
	}
}

func deleteCmd(collection, short string) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			return c.json(cmd.Context(), "DELETE", "/v1/"+collection+"/"+url.PathEscape(args[0]), nil, nil)
		},
	}
}

func newConnectorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "connector", Short: "Connectors: addresses served at this site"}
	var (
		c      resource.Connector
		format string
	)
	create := &cobra.Command{
		Use:   "create ADDRESS",
		Short: "Serve ADDRESS at this site by a local target",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.Spec.Address = args[0]
			if c.Name == "" {
				c.Name = args[0]
			}
			if err := c.Default(); err != nil {
				return err
			}
			cl, err := siteClient()
			if err != nil {
				return err
			}
			var got resource.Connector
			if err := cl.json(cmd.Context(), "PUT", "/v1/connectors/"+url.PathEscape(c.Name), c, &got); err != nil {
				return err
			}
			return output(stdout(), format, got, func(w *tabwriter.Writer) { connectorTable(w, []resource.Connector{got}) })
		},
	}
	f := create.Flags()
	f.StringVar(&c.Name, "name", "", "connector name (default: the address)")
	f.StringVar(&c.Spec.Target, "target", "", "HOST:PORT of the local service")
	f.StringVar(&c.Spec.Protocol, "protocol", "tcp", "tcp or http")
	f.Uint32Var(&c.Spec.Capacity, "capacity", 1, "relative weight among connectors of equal path cost")
	f.Uint32Var(&c.Spec.MaxConnections, "max-connections", 0, "connections at which the connector is saturated (0: no limit)")
	f.Uint32Var(&c.Spec.MaxPending, "max-pending", 0, "http: requests that may wait for one of --max-connections before the connector is saturated (0: no limit)")
	f.Uint32Var(&c.Spec.MaxRequests, "max-requests", 0, "http: requests in flight at which the connector is saturated (0: no limit)")
	f.IntVar(&c.Spec.Outlier.ConsecutiveErrors, "outlier-consecutive-errors", resource.DefaultOutlierConsecutiveErrors, "http: 5xx answers or connect failures in a row that eject the target (-1: never)")
	f.DurationVar(&c.Spec.Outlier.Interval.Duration, "outlier-interval", resource.DefaultOutlierInterval, "http: healthy time that forgives one past ejection")
	f.DurationVar(&c.Spec.Outlier.BaseEjection.Duration, "outlier-base-ejection", resource.DefaultOutlierBaseEjection, "http: duration of a first ejection; the n-th lasts n times as long")
	f.IntVar(&c.Spec.Outlier.MaxEjectionPercent, "outlier-max-ejection-percent", resource.DefaultOutlierMaxEjectionPercent, "http: most connectors of an address ejected at once, in percent (one always may be)")
	create.MarkFlagRequired("target")
	create.Flags().StringVarP(&format, "output", "o", "", "output format: table, json or yaml")
	list := listCmd("connectors", &format, func(w *tabwriter.Writer, b []byte) error {
		var out struct{ Items []resource.Connector }
		if err := yaml.Unmarshal(b, &out); err != nil {
			return err
		}
		connectorTable(w, out.Items)
		return nil
	})
	cmd.AddCommand(create, list, deleteCmd("connectors", "Delete a connector"))
	return cmd
}

func connectorTable(w io.Writer, cs []resource.Connector) {
	fmt.Fprintln(w, "NAME\tADDRESS\tTARGET\tPROTOCOL\tCAPACITY")
	for _, c := range cs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", c.Name, c.Spec.Address, c.Spec.Target, c.Spec.Protocol, c.Spec.Capacity)
	}
}

func newListenerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "listener", Short: "Listeners: local ports that reach an address anywhere"}
	var (
		l      resource.Listener
		format string
	)
	create := &cobra.Command{
		Use:   "create ADDRESS",
		Short: "Open a local port that carries connections to ADDRESS",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l.Spec.Address = args[0]
			if l.Name == "" {
				l.Name = args[0]
			}
			if err := l.Default(); err != nil {
				return err
			}
			c, err := siteClient()
			if err != nil {
				return err
			}
			var got site.ListenerView
			if err := c.json(cmd.Context(), "PUT", "/v1/listeners/"+url.PathEscape(l.Name), l, &got); err != nil {
				return err
			}
			return output(stdout(), format, got, func(w *tabwriter.Writer) { listenerTable(w, []site.ListenerView{got}) })
		},
	}
	f := create.Flags()
	f.StringVar(&l.Name, "name", "", "listener name (default: the address)")
	f.IntVar(&l.Spec.Port, "port", 0, "local port (0 picks a free one)")
	f.StringVar(&l.Spec.Host, "host", "127.0.0.1", "local IP address to listen on")
	f.StringVar(&l.Spec.Protocol, "protocol", "tcp", "tcp or http")
	f.StringVar(&l.Spec.Hedge, "hedge", resource.HedgeOff, "http: backup copy of idempotent requests: off, always, auto (after the recent p95) or a delay such as 50ms")
	var retries int32
	f.Int32Var(&retries, "retries", resource.DefaultRetries, "http: other candidates an idempotent request that failed before any answer is tried on")
	create.PreRun = func(*cobra.Command, []string) { l.Spec.Retries = &retries }
	create.MarkFlagRequired("port")
	create.Flags().StringVarP(&format, "output", "o", "", "output format: table, json or yaml")
	list := listCmd("listeners", &format, func(w *tabwriter.Writer, b []byte) error {
		var out struct{ Items []site.ListenerView }
		if err := yaml.Unmarshal(b, &out); err != nil {
			return err
		}
		listenerTable(w, out.Items)
		return nil
	})
	cmd.AddCommand(create, list, deleteCmd("listeners", "Delete a listener"))
	return cmd
}

func listenerTable(w io.Writer, ls []site.ListenerView) {
	fmt.Fprintln(w, "NAME\tADDRESS\tLISTEN\tPROTOCOL")
	for _, l := range ls {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", l.Name, l.Spec.Address, l.Listen, l.Spec.Protocol)
	}
}

// listCmd lists a collection; table renders the raw JSON answer.
func listCmd(collection string, format *string, table func(*tabwriter.Writer, []byte) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List " + collection,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			var raw map[string]any
			if err := c.json(cmd.Context(), "GET", "/v1/"+collection, nil, &raw); err != nil {
				return err
			}
			b, _ := yaml.Marshal(raw)
			var terr error
			err = output(stdout(), *format, raw["items"], func(w *tabwriter.Writer) { terr = table(w, b) })
			if err != nil {
				return err
			}
			return terr
		},
	}
	cmd.Flags().StringVarP(format, "output", "o", "", "output format: table, json or yaml")
	return cmd
}

func newStatusCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the site, its links, the network's sites and every reachable address (with --controller: intent status)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.controller != "" {
				return controllerStatus(cmd, args)
			}
			if len(args) > 0 {
				return fmt.Errorf("status takes no argument for a site")
			}
			c, err := siteClient()
			if err != nil {
				return err
			}
			var st site.Status
			if err := c.json(cmd.Context(), "GET", "/v1/status", nil, &st); err != nil {
				return err
			}
			return output(stdout(), format, st, func(w *tabwriter.Writer) { statusTable(w, st) })
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "", "output format: table, json or yaml")
	return cmd
}

func statusTable(w *tabwriter.Writer, st site.Status) {
	fmt.Fprintf(w, "Site %s (%s)\tadmin %s\tlink %s\tevents %s\n\n", st.Site.Name, st.Site.ID, st.Site.Admin, st.Site.Link, st.Site.Events)
	linkTable(w, st.Links)
	fmt.Fprintln(w, "\nSITE\tCOST\tPATH")
	for _, s := range st.Sites {
		fmt.Fprintf(w, "%s\t%d\t%s\n", s.Name, s.Cost, strings.Join(s.Path, " > "))
	}
	fmt.Fprintln(w, "\nADDRESS\tSERVED AT (COST)")
	for _, a := range st.Addresses {
		var at []string
		for _, s := range a.Sites {
			at = append(at, fmt.Sprintf("%s (%d)", s.Name, s.Cost))
		}
		fmt.Fprintf(w, "%s\t%s\n", a.Address, strings.Join(at, ", "))
	}
	if len(st.Listeners) > 0 {
		fmt.Fprintln(w)
		listenerTable(w, st.Listeners)
	}
}

func newApplyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE.yaml",
		Short: "Apply Listener, Connector, Link, Topic, Queue and Subscription resources (several per file; - for stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := readFileOrStdin(file)
			if err != nil {
				return err
			}
			// Validate locally first so a typo is reported before anything changes.
			if _, err := resource.Decode(bytes.NewReader(b)); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			c, err := siteClient()
			if err != nil {
				return err
			}
			var out struct{ Items []site.ApplyResult }
			if err := c.do(cmd.Context(), "POST", "/v1/apply", bytes.NewReader(b), "application/yaml", &out); err != nil {
				return err
			}
			for _, r := range out.Items {
				fmt.Printf("%s/%s %s\n", strings.ToLower(r.Kind), r.Name, r.Result)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file with resources (- for stdin)")
	cmd.MarkFlagRequired("filename")
	return cmd
}

func readFileOrStdin(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	}
	return os.ReadFile(name)
}
