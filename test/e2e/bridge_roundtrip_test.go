package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBridgeRoundTrip: an MQTT 5 message in binary mode enters the mesh
// through a bridge at A and leaves it through a Kafka bridge at B (kfake,
// see kafka): every CloudEvents attribute, extension, the content type and
// the data arrive as the publisher set them, in the Kafka binding.
func TestBridgeRoundTrip(t *testing.T) {
	m, k := startMosquitto(t), startKafka(t)
	a, b := startSite(t, "a"), startSite(t, "b")
	b.linkTo(a)
	a.weft("topic", "create", "rt.t", "--delivery", "persisted")
	k.received(t, "weft-out")
	a.weft("bridge", "create", "mq", "--broker", m.url(), "--in", "rt/+=rt.t")
	b.weft("bridge", "create", "kf", "--broker", k.url(), "--out", "rt.t=weft-out")
	waitFor(t, 15*time.Second, "both bridges to connect", func() bool {
		return a.bridgeState("mq") == "connected" && b.bridgeState("kf") == "connected"
	})
	n := 0
	waitFor(t, 20*time.Second, "a probe from MQTT to Kafka", func() bool {
		n++
		m.publish(t, "rt/probe", []string{fmt.Sprint("probe-", n)})
		got, _ := distinct(k.received(t, "weft-out"), "probe-")
		return got > 0
	})
	want := map[string]string{
		"ce_specversion": "1.0", "ce_id": "rt-1", "ce_source": "/plant/7", "ce_type": "com.example.temp",
		"ce_subject": "sensor-7", "ce_time": "2026-12-02T10:00:00.5Z", "ce_dataschema": "https://example.com/temp.json",
		"ce_traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "ce_sensorzone": "north",
		"content-type": "application/json",
	}
	props := &paho.PublishProperties{ContentType: "application/json"}
	for k, v := range want {
		if k != "content-type" {
			props.User = append(props.User, paho.UserProperty{Key: k[len("ce_"):], Value: v})
		}
	}
	const data = `{"celsius":21.5}`
	m.retry(t, m.publisher(t), &paho.Publish{QoS: 1, Topic: "rt/7", Payload: []byte(data), Properties: props})

	cl, err := kgo.NewClient(kgo.SeedBrokers(k.c.ListenAddrs()...), kgo.ConsumeTopics("weft-out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the event did not reach Kafka")
		}
		var rec *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "ce_id" && string(h.Value) == "rt-1" {
					rec = r
				}
			}
		})
		if rec == nil {
			continue
		}
		got := map[string]string{}
		for _, h := range rec.Headers {
			got[h.Key] = string(h.Value)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("Kafka header %s = %q, want %q", k, got[k], v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("Kafka headers %v, want exactly %v", got, want)
		}
		if string(rec.Value) != data {
			t.Errorf("data %s, want %s", rec.Value, data)
		}
		break
	}

	// A bridge to a broker that is not there retries, and says why, in
	// its listing and in `weft status`; delete stops it.
	a.weft("bridge", "create", "down", "--broker", "nats://127.0.0.1:1", "--out", "rt.t=nowhere")
	waitFor(t, 15*time.Second, "the bridge to a missing broker to retry", func() bool { return a.bridgeState("down") == "retrying" })
	if st := a.weft("status", "-o", "wide"); !strings.Contains(st, "down") || !strings.Contains(st, "retrying") || !strings.Contains(st, "no servers available") {
		t.Errorf("weft status does not show the retrying bridge with its error:\n%s", st)
	}
	a.weft("bridge", "delete", "down")
	if out, err := a.try("bridge", "list", "down"); err == nil {
		t.Errorf("bridge down still listed after delete:\n%s", out)
	}
}
