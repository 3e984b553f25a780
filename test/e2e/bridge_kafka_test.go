package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafka is franz-go's kfake cluster in the test process: Kafka itself
// cannot be installed here (no Debian package, no JVM). The sites reach it
// over TCP like any Kafka, and the bridge's code path is the one a real
// cluster gets. kfake keeps everything in memory, so a restart would lose
// the log: restart leaves it running, and a broker outage is tested with
// the other brokers.
type kafka struct {
	c  *kfake.Cluster
	cl *kgo.Client

	mu       sync.Mutex
	got      map[string][]string
	watching map[string]bool
}

func startKafka(t *testing.T) *kafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "weft-in", "weft-out", "weft-direct"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	k := &kafka{c: c, cl: cl, got: map[string][]string{}, watching: map[string]bool{}}
	t.Cleanup(func() {
		cl.Close()
		c.Close()
	})
	return k
}

func (k *kafka) url() string { return "kafka://" + k.c.ListenAddrs()[0] }

func (k *kafka) restart(t *testing.T) {
	t.Log("kfake has no persistence: the Kafka broker is not restarted (see the MQTT, AMQP and NATS tests)")
}

func (k *kafka) produce(t *testing.T, rs []*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func (k *kafka) publish(t *testing.T, topic string, ids []string) {
	rs := make([]*kgo.Record, len(ids))
	for i, id := range ids {
		rs[i] = &kgo.Record{Topic: topic, Value: []byte(`{"id":"` + id + `"}`), Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(id)}, {Key: "ce_source", Value: []byte("/e2e/kafka")},
			{Key: "ce_type", Value: []byte("e2e.in")}, {Key: "content-type", Value: []byte("application/json")},
		}}
	}
	k.produce(t, rs)
}

func (k *kafka) publishMalformed(t *testing.T, topic string) {
	k.produce(t, []*kgo.Record{{Topic: topic, Value: []byte("x"), Headers: []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}}}})
}

// received reads topic from its start with a client of its own.
func (k *kafka) received(t *testing.T, topic string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.watching[topic] {
		k.watching[topic] = true
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				fs.EachRecord(func(r *kgo.Record) {
					id := ""
					for _, h := range r.Headers {
						if h.Key == "ce_id" {
							id = string(h.Value)
						}
					}
					k.mu.Lock()
					k.got[topic] = append(k.got[topic], id)
					k.mu.Unlock()
				})
			}
		}()
		t.Cleanup(func() {
			cancel()
			<-done
			cl.Close()
		})
	}
	return append([]string(nil), k.got[topic]...)
}

// TestBridgeKafka: testBridge with a kfake cluster (see kafka).
func TestBridgeKafka(t *testing.T) {
	testBridge(t, startKafka(t), "weft-in", "weft-in", "weft-out")
}
