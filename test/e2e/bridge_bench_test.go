package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestBridgeBench measures events/s through each bridge, in and out of the
// mesh, against the broker's own rate with the same client in the same run
// (bench/README.md, "Bridges"). It runs only with WEFT_BRIDGE_BENCH=1 (all
// brokers) or WEFT_BRIDGE_BENCH=NAME (one).
func TestBridgeBench(t *testing.T) {
	only := os.Getenv("WEFT_BRIDGE_BENCH")
	if only == "" {
		t.Skip("a benchmark: WEFT_BRIDGE_BENCH=1 runs it")
	}
	const n = 5000
	for _, tc := range []struct {
		name                      string
		start                     func(*testing.T) testBroker
		inFrom, inPub, to, direct string
	}{
		{"mqtt", func(t *testing.T) testBroker { return startMosquitto(t) }, "plant/+/temp", "plant/7/temp", "weft/out", "direct"},
		{"nats-jetstream", func(t *testing.T) testBroker { return startNATS(t) }, "in.plant", "in.plant", "out.weft", "in.direct"},
		{"rabbitmq", func(t *testing.T) testBroker { return startRabbitMQ(t) }, "weft-in", "weft-in", "weft-out", "direct"},
		{"kafka-kfake", func(t *testing.T) testBroker { return startKafka(t) }, "weft-in", "weft-in", "weft-out", "weft-direct"},
	} {
		if only != "1" && only != tc.name {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			br := tc.start(t)
			a := startSite(t, "a")
			a.weft("topic", "create", "in.t", "--delivery", "persisted")
			a.weft("topic", "create", "out.t", "--delivery", "persisted")
			col := a.subscribeSSE(t, "/v1/topics/in.t")
			br.received(t, tc.to)
			br.received(t, tc.direct) // the direct consumer, of a subject of its own
			a.weft("bridge", "create", "br", "--broker", br.url(), "--in", tc.inFrom+"=in.t", "--out", "out.t="+tc.to)
			waitFor(t, 15*time.Second, "the bridge to connect", func() bool { return a.bridgeState("br") == "connected" })
			rate := func(what string, run func(), done func() bool) float64 {
				start := time.Now()
				run()
				waitFor(t, 120*time.Second, what, done)
				return n / time.Since(start).Seconds()
			}
			direct := rate("direct", func() { br.publish(t, tc.direct, ids("d-", 0, n)) }, func() bool {
				got, _ := distinct(br.received(t, tc.direct), "d-")
				return got == n
			})
			in := rate("in", func() { br.publish(t, tc.inPub, ids("i-", 0, n)) }, func() bool { return col.count("e2e.in") >= n })
			out := rate("out", func() {
				for i := 0; i < n; i += 500 {
					a.publishBatch("/v1/topics/out.t", batch("o", "/bench", i, 500))
				}
			}, func() bool {
				got, _ := distinct(br.received(t, tc.to), "")
				return got >= n
			})
			t.Logf("%s: direct %.0f/s, in through the bridge %.0f/s (%.2fx), out %.0f/s (%.2fx)", tc.name, direct, in, in/direct, out, out/direct)
			fmt.Printf("BENCH %s direct=%.0f in=%.0f out=%.0f\n", tc.name, direct, in, out)
		})
	}
}
