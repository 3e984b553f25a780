package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsServer is a nats-server with JetStream, and a stream BRIDGE that
// captures the test's subjects, so that both directions of the bridge are
// persisted (JetStream consumer and publish acknowledgements).
type natsServer struct {
	brokerProc
	port int
	nc   *nats.Conn
	js   jetstream.JetStream

	mu   sync.Mutex
	subs map[string]jetstream.ConsumeContext
	got  map[string][]string
}

func startNATS(t *testing.T) *natsServer {
	t.Helper()
	n := &natsServer{port: freePort(t), subs: map[string]jetstream.ConsumeContext{}, got: map[string][]string{}}
	n.brokerProc = brokerProc{name: "nats-server", addr: fmt.Sprintf("127.0.0.1:%d", n.port), boot: 10 * time.Second,
		args: []string{needBinary(t, "nats-server", "run `export PATH=$(bash .ci/install-nats-server.sh):$PATH`"),
			"-a", "127.0.0.1", "-p", fmt.Sprint(n.port), "-js", "-sd", t.TempDir()}}
	n.start(t)
	var err error
	n.nc, err = nats.Connect(n.url(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	n.js, _ = jetstream.New(n.nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.js.CreateStream(ctx, jetstream.StreamConfig{Name: "BRIDGE", Subjects: []string{"in.>", "out.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.mu.Lock()
		for _, s := range n.subs {
			s.Stop()
		}
		n.mu.Unlock()
		n.nc.Close()
		n.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("nats-server log:\n%s", n.log.String())
		}
	})
	return n
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// restart SIGKILLs nats-server: JetStream's file store has what it
// acknowledged written to its files, which the kernel keeps.
func (n *natsServer) restart(t *testing.T) {
	n.stop(syscall.SIGKILL)
	n.start(t)
}

// publish publishes with JetStream and retries through a restart; the
// stream's duplicate window drops a message sent twice.
func (n *natsServer) publish(t *testing.T, subject string, ids []string) {
	t.Helper()
	for _, id := range ids {
		msg := &nats.Msg{Subject: subject, Data: []byte(`{"id":"` + id + `"}`), Header: nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {id}, "ce-source": {"/e2e/nats"}, "ce-type": {"e2e.in"}, "Content-Type": {"application/json"},
		}}
		n.retry(t, msg, id)
	}
}

func (n *natsServer) retry(t *testing.T, msg *nats.Msg, id string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := n.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publishing to nats-server: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *natsServer) publishMalformed(t *testing.T, subject string) {
	n.retry(t, &nats.Msg{Subject: subject, Data: []byte("x"), Header: nats.Header{"ce-specversion": {"1.0"}}}, "malformed")
}

// received consumes subject from the stream with a durable consumer.
func (n *natsServer) received(t *testing.T, subject string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.subs[subject]; !ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := n.js.CreateOrUpdateConsumer(ctx, "BRIDGE", jetstream.ConsumerConfig{Durable: "e2e-" + strings.ReplaceAll(subject, ".", "_"), FilterSubject: subject, AckPolicy: jetstream.AckNonePolicy})
		if err != nil {
			t.Fatal(err)
		}
		n.got[subject] = []string{}
		cc, err := c.Consume(func(m jetstream.Msg) {
			n.mu.Lock()
			n.got[subject] = append(n.got[subject], m.Headers().Get("ce-id"))
			n.mu.Unlock()
		}, jetstream.ConsumeErrHandler(func(jetstream.ConsumeContext, error) {}))
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		n.subs[subject] = cc
	}
	return append([]string(nil), n.got[subject]...)
}

// TestBridgeNATS: testBridge with nats-server and JetStream.
func TestBridgeNATS(t *testing.T) {
	n := startNATS(t)
	testBridge(t, n, "in.plant", "in.plant", "out.weft")
}

// TestBridgeVolatileNATS: core NATS subjects (no stream captures them)
// bridge a volatile topic both ways: in, what the site forwards reaches a
// subscriber at B; out, what is published at B reaches a core subscriber.
// At most once, so the test publishes while both ends are known to listen.
func TestBridgeVolatileNATS(t *testing.T) {
	n := startNATS(t)
	a, b := startSite(t, "a"), startSite(t, "b")
	b.linkTo(a)
	col := b.subscribeSSE(t, "/v1/topics/core.t")
	var mu sync.Mutex
	var out []string
	sub, err := n.nc.Subscribe("core.out", func(m *nats.Msg) {
		mu.Lock()
		out = append(out, m.Header.Get("ce-id"))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	a.weft("bridge", "create", "core", "--broker", n.url(), "--in", "core.in=core.t", "--out", "core.b=core.out")
	waitFor(t, 15*time.Second, "the bridge to connect", func() bool { return a.bridgeState("core") == "connected" })
	send := func(id string) {
		msg := &nats.Msg{Subject: "core.in", Data: []byte(`{}`), Header: nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {id}, "ce-source": {"/e2e/core"}, "ce-type": {"e2e.in"}, "Content-Type": {"application/json"}}}
		if err := n.nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
	}
	k := 0
	waitFor(t, 20*time.Second, "probes both ways", func() bool {
		k++
		send(fmt.Sprint("probe-", k))
		b.publishBatch("/v1/topics/core.b", []ce{{ID: fmt.Sprint("probe-", k), Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}})
		mu.Lock()
		defer mu.Unlock()
		return col.count("e2e.in") > 0 && len(out) > 0
	})
	const total = 200
	for i := range total {
		send(fmt.Sprint("v-", i))
	}
	b.publishBatch("/v1/topics/core.b", batch("v", "/e2e/core", 0, total))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, _ := distinct(col.ids("e2e.in"), "v-")
		mu.Lock()
		var evs []string
		for _, id := range out {
			if !strings.HasPrefix(id, "probe-") {
				evs = append(evs, id)
			}
		}
		mu.Unlock()
		o, _ := distinct(evs, "")
		if got == total && o == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d in at B, %d out at the subscriber; at A:\n%s", got, total, o, a.weft("bridge", "list", "-o", "wide"))
		}
	}
}
