package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"weft.dev/weft/bench/internal/benchproc"
)

// natsServers runs two nats-server processes, each its own one-server
// cluster (A, B), joined by a gateway into a supercluster, both with
// JetStream on a file store. It returns their client URLs. Each cluster
// routes to itself: a clustered JetStream refuses to start without routes,
// and the server ignores a route to itself. With syncAlways JetStream
// fsyncs every write before acknowledging it; by default it acknowledges
// once the write is in the OS's cache and fsyncs every 2 minutes.
//
// The ports are found free before the servers bind them, so another
// process can take one in between (on a busy machine an outgoing
// connection's ephemeral port does): a pair that fails on that is stopped
// and started again on new ports.
func natsServers(ctx context.Context, cl *benchproc.Cleanups, bin string, syncAlways bool) (urlA, urlB string, procs []*benchproc.Proc, err error) {
	for range 3 {
		urlA, urlB, procs, err = natsPair(ctx, cl, bin, syncAlways)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			return urlA, urlB, procs, err
		}
		for _, p := range procs {
			p.Stop()
		}
	}
	return urlA, urlB, procs, err
}

// natsPair is one try of natsServers.
func natsPair(ctx context.Context, cl *benchproc.Cleanups, bin string, syncAlways bool) (urlA, urlB string, procs []*benchproc.Proc, err error) {
	tmp, err := os.MkdirTemp("", "nats-bench-events-")
	if err != nil {
		return "", "", nil, err
	}
	cl.Add(func() { os.RemoveAll(tmp) })
	ports := map[string][3]int{}
	for _, n := range []string{"A", "B"} {
		var p [3]int
		for i := range p {
			if p[i], err = benchproc.FreePort(); err != nil {
				return "", "", nil, err
			}
		}
		ports[n] = p
	}
	syncOpt := ""
	if syncAlways {
		syncOpt = ", sync_interval: always"
	}
	urls := map[string]string{}
	for n, other := range map[string]string{"A": "B", "B": "A"} {
		p := ports[n]
		conf := fmt.Sprintf(`server_name: %[1]s
listen: 127.0.0.1:%[2]d
jetstream { store_dir: %[5]q%[8]s }
cluster { name: %[1]s, listen: 127.0.0.1:%[3]d, routes: [ "nats://127.0.0.1:%[3]d" ] }
gateway { name: %[1]s, listen: 127.0.0.1:%[4]d, gateways: [ { name: %[6]s, url: "nats://127.0.0.1:%[7]d" } ] }
`, n, p[0], p[1], p[2], filepath.Join(tmp, n), other, ports[other][2], syncOpt)
		cf := filepath.Join(tmp, n+".conf")
		if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
			return "", "", nil, err
		}
		pr, err := benchproc.Start(cl, "nats-server "+n, bin, "-c", cf)
		if err != nil {
			return "", "", nil, err
		}
		procs = append(procs, pr)
		urls[n] = fmt.Sprintf("nats://127.0.0.1:%d", p[0])
	}
	// JetStream answers once the two servers have a meta leader, which
	// needs the gateway up.
	err = benchproc.Poll(ctx, 30*time.Second, "JetStream in the supercluster", func() error {
		for _, p := range procs {
			if p.Exited() {
				return benchproc.Fatal(fmt.Errorf("%s exited: %s", p.Name(), p.Output()))
			}
		}
		nc, err := nats.Connect(urls["A"])
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = js.AccountInfo(c)
		return err
	})
	return urls["A"], urls["B"], procs, err
}

// natsCorePublisher publishes n messages on one connection, then flushes:
// the server's PONG says it has processed them, as weft's 202 does.
func natsCorePublisher(nc *nats.Conn, subj string) publisher {
	return func(ctx context.Context, n int) error {
		now := time.Now()
		for range n {
			if err := nc.Publish(subj, payload(now)); err != nil {
				return err
			}
		}
		// FlushWithContext insists on a deadline.
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return nc.FlushWithContext(ctx)
	}
}

// natsAsyncPublisher publishes n messages and returns without waiting for
// the server, as `nats bench pub` does: nats.go's flusher writes them out
// in the background, and Publish blocks only when its buffer is full.
// Everything published is flushed before the throughput stops counting
// (it waits for the subscriber).
func natsAsyncPublisher(nc *nats.Conn, subj string) publisher {
	return func(ctx context.Context, n int) error {
		now := time.Now()
		for range n {
			if err := nc.Publish(subj, payload(now)); err != nil {
				return err
			}
		}
		return nil
	}
}

// jsAsyncPublisher publishes n messages with PublishAsync and returns
// without waiting for their PubAcks: up to the JetStream context's
// PublishAsyncMaxPending are in flight, and PublishAsync waits when that
// many are, as `nats bench js pub --async` keeps them in flight.
func jsAsyncPublisher(js jetstream.JetStream, subj string) publisher {
	return func(ctx context.Context, n int) error {
		now := time.Now()
		for range n {
			// Wait for room as long as the run lasts: a server that fsyncs
			// every message (sync_interval: always) can take longer than
			// any fixed stall wait to ack 4,000, more so on a loaded machine.
			for {
				_, err := js.PublishAsync(subj, payload(now), jetstream.WithStallWait(time.Second))
				if err == nil {
					break
				}
				if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		return nil
	}
}

// jsPublisher publishes n messages asynchronously and waits for every
// PubAck (stored by the stream's server).
func jsPublisher(js jetstream.JetStream, subj string) publisher {
	return func(ctx context.Context, n int) error {
		now := time.Now()
		futs := make([]jetstream.PubAckFuture, 0, n)
		for range n {
			f, err := js.PublishAsync(subj, payload(now))
			if err != nil {
				return err
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
}
