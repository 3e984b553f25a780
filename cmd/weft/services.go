package main

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/resource"
)

var listenerKind = kind[apitype.ListenerView]{
	name: "listener", collection: "listeners",
	itemName: func(l apitype.ListenerView) string { return l.Name },
	header: func(wide bool) []any {
		h := []any{"NAME", "ADDRESS", "LISTEN", "PROTOCOL"}
		if wide {
			h = append(h, "HEDGE", "RETRIES", "WARNING")
		}
		return h
	},
	row: func(l apitype.ListenerView, wide bool) []any {
		r := []any{l.Name, l.Spec.Address, orDash(l.Listen), l.Spec.Protocol}
		if wide {
			var retries any = "-"
			if l.Spec.Retries != nil {
				retries = *l.Spec.Retries
			}
			r = append(r, l.Spec.Hedge, retries, orDash(l.Warning))
		}
		return r
	},
}

var connectorKind = kind[resource.Connector]{
	name: "connector", collection: "connectors",
	itemName: func(c resource.Connector) string { return c.Name },
	header: func(wide bool) []any {
		h := []any{"NAME", "ADDRESS", "TARGET", "PROTOCOL", "CAPACITY"}
		if wide {
			h = append(h, "MAX CONNECTIONS", "MAX PENDING", "MAX REQUESTS")
		}
		return h
	},
	row: func(c resource.Connector, wide bool) []any {
		r := []any{c.Name, c.Spec.Address, c.Spec.Target, c.Spec.Protocol, c.Spec.Capacity}
		if wide {
			r = append(r, c.Spec.MaxConnections, c.Spec.MaxPending, c.Spec.MaxRequests)
		}
		return r
	},
}

func newListenerCmd() *cobra.Command {
	var (
		l       resource.Listener
		retries int32
		format  string
		wait    time.Duration
	)
	create := &cobra.Command{
		Use:   "create ADDRESS --port PORT",
		Short: "Open a local port that carries connections to ADDRESS, wherever it is served",
		Long: `Open a local port at this site; a client that connects there is carried to a
connector for ADDRESS at any site of the network, over the cheapest healthy path.
With --protocol http each request is balanced on its own, with retries and
hedging. Creating a listener that exists replaces it.`,
		Example: `  weft --site ~/weft/east listener create orders --port 9090
  weft --site ~/weft/east listener create web --port 8080 --protocol http --hedge auto --retries 2
  weft --site ~/weft/east listener create greeter --port 50051 --protocol http --balance latency
  weft --site ~/weft/east listener create api --port 8443 --protocol http --tls-cert cert.pem --tls-key key.pem
  weft --site ~/weft/east listener create orders --port 0 -o json   # 0 picks a free port
  weft --site ~/weft/east listener create orders --port 9090 --wait 10s   # until a connector is reachable`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l.Spec.Address, l.Spec.Retries = args[0], &retries
			l.Name = cmp.Or(l.Name, args[0])
			if err := absPaths(&l.Spec.TLSCert, &l.Spec.TLSKey); err != nil {
				return err
			}
			got, c, existed, err := listenerKind.create(cmd.Context(), l.Name, &l)
			if err != nil {
				return err
			}
			if wait > 0 && got.Warning != "" {
				stop := progress(g.stderr, "waiting for a connector for "+l.Spec.Address)
				got, err = waitReachable(cmd.Context(), c, got, wait)
				stop()
				if err != nil {
					return err
				}
			}
			if format != formatTable {
				return output(g.stdout, format, got, nil)
			}
			listenerKind.done(g.stdout, got.Name, existed, "listening on "+got.Listen)
			if got.Warning != "" {
				g.stderr.Write([]byte("warning: " + got.Warning + "\n"))
			}
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&l.Name, "name", "", "listener name (default: the address)")
	f.IntVar(&l.Spec.Port, "port", 0, "local port (0 picks a free one)")
	f.StringVar(&l.Spec.Host, "host", "127.0.0.1", "local IP address to listen on")
	f.StringVar(&l.Spec.Protocol, "protocol", "tcp", "tcp or http")
	f.StringVar(&l.Spec.Hedge, "hedge", resource.HedgeOff, "http: backup copy of idempotent requests: off, always, auto (after the recent p95) or a delay such as 50ms")
	f.Int32Var(&retries, "retries", resource.DefaultRetries, "http: other candidates an idempotent request that failed before any answer is tried on")
	f.DurationVar(&wait, "wait", 0, "wait up to this long until a connector for the address is reachable (0: do not wait)")
	f.StringVar(&l.Spec.Balance, "balance", "", "http: how candidates are ranked: cost (cheapest path tier first), latency (measured answers, any cost) or cost+latency (default cost)")
	f.StringSliceVar(&l.Spec.GRPCRetryOn, "grpc-retry-on", nil, "http: gRPC codes that are target failures, retried when safe (default cancelled,deadline-exceeded,resource-exhausted,unavailable)")
	f.StringVar(&l.Spec.TLSCert, "tls-cert", "", "http: serve HTTPS with this PEM certificate file (a path on the site's host), ALPN h2 and http/1.1")
	f.StringVar(&l.Spec.TLSKey, "tls-key", "", "http: the PEM key file of --tls-cert")
	create.MarkFlagRequired("port")
	create.RegisterFlagCompletionFunc("protocol", cobra.FixedCompletions([]string{"tcp", "http"}, cobra.ShellCompDirectiveNoFileComp))
	addOutputFlag(create, &format, formatTable, formatJSON, formatYAML)
	return group(&cobra.Command{
		Use:   "listener",
		Short: "Listeners: local ports that reach an address anywhere",
		Example: `  weft --site ~/weft/east listener create orders --port 9090
  weft --site ~/weft/east listener list
  weft --site ~/weft/east listener delete orders`,
	}, create,
		listCmd(listenerKind, `  weft --site ~/weft/east listener list
  weft --site ~/weft/east listener list -o wide`),
		deleteCmd(listenerKind, "Delete listeners (their ports close)", `  weft --site ~/weft/east listener delete orders`))
}

func newConnectorCmd() *cobra.Command {
	var (
		c      resource.Connector
		format string
	)
	create := &cobra.Command{
		Use:   "create ADDRESS --target HOST:PORT",
		Short: "Serve ADDRESS at this site by a local target",
		Long: `Say that ADDRESS is served at this site by the service at --target; listeners
for ADDRESS anywhere in the network reach it. Creating a connector that exists
replaces it.`,
		Example: `  weft --site ~/weft/west connector create orders --target 127.0.0.1:8080
  weft --site ~/weft/west connector create web --target 10.0.0.5:8080 --protocol http \
      --max-connections 1 --max-pending 0 --outlier-consecutive-errors 5 --outlier-base-ejection 30s
  weft --site ~/weft/west connector create greeter --target 127.0.0.1:50051 --protocol http   # gRPC (h2c)
  weft --site ~/weft/west connector create api --target api.internal:443 --protocol http --target-tls --target-ca ca.pem`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.Spec.Address = args[0]
			c.Name = cmp.Or(c.Name, args[0])
			if err := absPaths(&c.Spec.TargetCA); err != nil {
				return err
			}
			got, _, existed, err := connectorKind.create(cmd.Context(), c.Name, &c)
			if err != nil {
				return err
			}
			if format != formatTable {
				return output(g.stdout, format, got, nil)
			}
			connectorKind.done(g.stdout, got.Name, existed, "")
			return nil
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
	f.StringVar(&c.Spec.TargetProtocol, "target-protocol", "", "http: what the target speaks: auto (follow the client, after probing the target once), http1 or h2c (default auto)")
	f.BoolVar(&c.Spec.TargetTLS, "target-tls", false, "http: TLS to the target")
	f.StringVar(&c.Spec.TargetCA, "target-ca", "", "http: PEM file of the CA that signs the target's certificate (a path on the site's host; default the system roots)")
	f.StringVar(&c.Spec.TargetServerName, "target-server-name", "", "http: name the target's certificate must carry (default the target's host)")
	create.MarkFlagRequired("target")
	create.RegisterFlagCompletionFunc("protocol", cobra.FixedCompletions([]string{"tcp", "http"}, cobra.ShellCompDirectiveNoFileComp))
	addOutputFlag(create, &format, formatTable, formatJSON, formatYAML)
	return group(&cobra.Command{
		Use:   "connector",
		Short: "Connectors: addresses served at this site",
		Example: `  weft --site ~/weft/west connector create orders --target 127.0.0.1:8080
  weft --site ~/weft/west connector list
  weft --site ~/weft/west connector delete orders`,
	}, create,
		listCmd(connectorKind, `  weft --site ~/weft/west connector list
  weft --site ~/weft/west connector list orders -o yaml`),
		deleteCmd(connectorKind, "Delete connectors (their addresses are withdrawn from the network)", `  weft --site ~/weft/west connector delete orders`))
}

// waitReachable polls the listener until a connector for its address is
// reachable (the site clears its warning) or wait has passed: routes come
// with site records, a moment after a connector is created anywhere.
func waitReachable(ctx context.Context, c *adminClient, l apitype.ListenerView, wait time.Duration) (apitype.ListenerView, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(wait)
	for {
		select {
		case <-ctx.Done():
			return l, ctx.Err()
		case <-deadline:
			return l, fmt.Errorf("listener/%s was created, but %s", l.Name, l.Warning)
		case <-t.C:
		}
		items, err := listenerKind.list(ctx, c)
		if err != nil {
			return l, err
		}
		if i := slices.IndexFunc(items, func(x apitype.ListenerView) bool { return x.Name == l.Name }); i >= 0 {
			if l = items[i]; l.Warning == "" {
				return l, nil
			}
		}
	}
}

// absPaths makes relative file paths absolute, since the site that reads
// them may run in another directory.
func absPaths(paths ...*string) error {
	for _, p := range paths {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	return nil
}
