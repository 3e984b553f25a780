// Package kafka is the event bridge module for Kafka (kafka://), on
// github.com/twmb/franz-go.
//
// CloudEvents travel by the Kafka binding's binary mode: each attribute is
// a record header named ce_ and the attribute's name, datacontenttype is the
// content-type header; an event's partitionkey extension is the record key.
//
//   - In reads a topic in a consumer group named after the site, the bridge
//     and the topic, and marks each record for commit once weft has it; the
//     client commits marked offsets every second and when it leaves: at
//     least once. A group without commits (a new bridge) starts at the
//     topic's earliest offset, so that nothing before its first commit is
//     skipped. A plain record's id is its topic, partition and offset,
//     which stay the same across redeliveries.
//   - Out produces with acks=all and the idempotent producer (franz-go's
//     default) and waits for every record's acknowledgement.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"weft.dev/weft/internal/bridge"
	"weft.dev/weft/internal/events/cloudevent"
)

// Binding is the Kafka CloudEvents binding: ce_ headers.
var Binding = bridge.Binding{Prefix: "ce_"}

func init() {
	bridge.Register(&bridge.Module{Name: "kafka", Binding: Binding, Dial: Dial})
}

type conn struct {
	cfg  bridge.Config
	opts []kgo.Opt
	prod *kgo.Client

	mu       sync.Mutex
	closed   bool
	shutdown []func()
}

// Dial makes the producer and checks that the broker answers.
func Dial(ctx context.Context, cfg bridge.Config) (bridge.Conn, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.URL.Host), kgo.ClientID("weft-" + cfg.Site + "-" + cfg.Bridge)}
	if cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.TLS))
	}
	if cfg.Username != "" {
		opts = append(opts, kgo.SASL(plain.Auth{User: cfg.Username, Pass: cfg.Password}.AsMechanism()))
	}
	prod, err := kgo.NewClient(append(opts, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))...)
	if err != nil {
		return nil, err
	}
	if err := prod.Ping(ctx); err != nil {
		prod.Close()
		return nil, err
	}
	return &conn{cfg: cfg, opts: opts, prod: prod}, nil
}

func (c *conn) Close() error {
	c.mu.Lock()
	c.closed = true
	fs := c.shutdown
	c.shutdown = nil
	c.mu.Unlock()
	for _, f := range fs {
		f()
	}
	c.prod.Close()
	return nil
}

// sessionTimeout is how long the group waits for a member gone without
// leaving (a site killed) before its partitions go to the member that
// replaces it: Kafka's default of 45 s would hold the bridge up as long
// after a crash.
const sessionTimeout = 10 * time.Second

// group names the consumer group of an In: the same across restarts.
func group(cfg bridge.Config, topic string) string {
	return "weft-" + cfg.Site + "-" + cfg.Bridge + "-" + topic
}

func (c *conn) Receive(ctx context.Context, topic string, out chan<- *bridge.Message) error {
	cl, err := kgo.NewClient(append(c.opts,
		kgo.ConsumerGroup(group(c.cfg, topic)), kgo.ConsumeTopics(topic),
		kgo.AutoCommitMarks(), kgo.AutoCommitInterval(time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(time.Second),
		kgo.SessionTimeout(sessionTimeout))...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		cl.Close()
		return errors.New("closed")
	}
	c.shutdown = append(c.shutdown, cancel)
	c.mu.Unlock()
	// Close commits what was marked, and leaves the group.
	defer cl.Close()
	for {
		fs := cl.PollRecords(ctx, 1024)
		if ctx.Err() != nil {
			return nil
		}
		if errs := fs.Errors(); len(errs) > 0 {
			e := errs[0]
			return fmt.Errorf("consuming %q (partition %d): %w", e.Topic, e.Partition, e.Err)
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			m := &bridge.Message{Subject: r.Topic, Body: r.Value, Key: fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset),
				Ack: func() error { cl.MarkCommitRecords(r); return nil }}
			for _, h := range r.Headers {
				if h.Key == "content-type" {
					m.ContentType = string(h.Value)
					continue
				}
				m.Headers = append(m.Headers, bridge.Header{Name: h.Key, Value: string(h.Value)})
			}
			select {
			case out <- m:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func (c *conn) Send(ctx context.Context, topic string, evs []cloudevent.Event) error {
	rs := make([]*kgo.Record, 0, len(evs))
	for i := range evs {
		hs, ct, body, err := bridge.Encode(&evs[i], Binding)
		if err != nil {
			return err
		}
		r := &kgo.Record{Topic: topic, Value: body}
		if k, ok := evs[i].Extensions()["partitionkey"].(string); ok {
			r.Key = []byte(k)
		}
		for _, h := range hs {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Name, Value: []byte(h.Value)})
		}
		if ct != "" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "content-type", Value: []byte(ct)})
		}
		rs = append(rs, r)
	}
	if err := c.prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		return fmt.Errorf("producing to %q: %w", topic, err)
	}
	return nil
}
