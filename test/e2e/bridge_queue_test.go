package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestBridgeOutQueueNATS: A's bridge consumes the persisted weft queue
// jobs (--out-queue) and sends its events to a JetStream subject. What B
// sends to the queue reaches the broker through A, each event at least
// once, across a nats-server restart while events flow: nothing is lost.
func TestBridgeOutQueueNATS(t *testing.T) {
	n := startNATS(t)
	a, b := startSite(t, "a"), startSite(t, "b")
	b.linkTo(a)
	b.weft("queue", "create", "jobs", "--delivery", "persisted")
	n.received(t, "out.jobs") // the consumer exists before anything is sent
	a.weft("bridge", "create", "q", "--broker", n.url(), "--out-queue", "jobs=out.jobs")
	waitFor(t, 15*time.Second, "the bridge to connect", func() bool { return a.bridgeState("q") == "connected" })

	// The bridge's interest in the queue has to reach B first.
	k := 0
	waitFor(t, 20*time.Second, "a probe from B's queue at the broker", func() bool {
		k++
		b.publishBatch("/v1/queues/jobs", []ce{{ID: fmt.Sprint("probe-", k), Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}})
		got, _ := distinct(n.received(t, "out.jobs"), "probe-")
		return got > 0
	})

	const total, per = 1000, 100
	for i := 0; i < total; i += per {
		for {
			code, body := b.publishBatch("/v1/queues/jobs", batch("job", "/e2e/queue", i, per))
			if code == 202 {
				break
			}
			if code != 503 {
				t.Fatalf("publish at b: %d %s", code, body)
			}
			time.Sleep(50 * time.Millisecond) // Retry-After, shortened
		}
		if i == total/2 {
			n.restart(t)
		}
	}
	jobs := func() (got, dups int) { return distinct(numeric(n.received(t, "out.jobs")), "") }
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got, _ := jobs(); got == total {
			break
		}
		if time.Now().After(deadline) {
			got, _ := jobs()
			t.Fatalf("after 60s: %d of %d queue events at the broker; bridge status at A:\n%s", got, total, a.weft("bridge", "list", "-o", "yaml"))
		}
	}
	got, dups := jobs()
	t.Logf("out of the queue: %d distinct, %d duplicates (at least once)", got, dups)
}

// numeric keeps the ids that are numbers: the events of batch, not probes.
func numeric(ids []string) []string {
	var out []string
	for _, id := range ids {
		if _, err := strconv.Atoi(id); err == nil {
			out = append(out, id)
		}
	}
	return out
}
