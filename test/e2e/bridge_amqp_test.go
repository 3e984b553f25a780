package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// rabbitmq is Debian's rabbitmq-server started as a process of its own:
// its own node name, data directory, ports and no plugins, so that it
// shares nothing with a system RabbitMQ (but epmd, which any Erlang node
// on the machine shares).
type rabbitmq struct {
	brokerProc
	dir  string
	port int

	mu   sync.Mutex
	conn *amqp091.Connection
	pub  *amqp091.Channel
	got  map[string][]string
}

// rabbitmqServer is the script that runs the node itself: Debian's
// /usr/sbin/rabbitmq-server wraps it to run as the user rabbitmq, who
// cannot write into the test's directory.
const rabbitmqServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

func startRabbitMQ(t *testing.T) *rabbitmq {
	t.Helper()
	if _, err := os.Stat(rabbitmqServer); err != nil {
		t.Fatalf("rabbitmq-server is not installed (%v): apt-get install rabbitmq-server, or run .ci/install-bridge-deps.sh", err)
	}
	r := &rabbitmq{dir: t.TempDir(), port: freePort(t), got: map[string][]string{}}
	plugins := filepath.Join(r.dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	node := fmt.Sprintf("weft-e2e-%d@localhost", rand.Uint32())
	// Erlang boots slowly on a loaded machine.
	r.brokerProc = brokerProc{name: "rabbitmq", args: []string{rabbitmqServer}, addr: fmt.Sprintf("127.0.0.1:%d", r.port), boot: 90 * time.Second}
	r.env = append(os.Environ(),
		"HOME="+r.dir, // the Erlang cookie
		"RABBITMQ_NODENAME="+node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprint("RABBITMQ_NODE_PORT=", r.port),
		fmt.Sprint("RABBITMQ_DIST_PORT=", freePort(t)),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(r.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(r.dir, "log"),
		"RABBITMQ_LOGS=-",
		"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
		"RABBITMQ_CONFIG_FILE="+filepath.Join(r.dir, "rabbitmq"),
		// The script then execs the node rather than run it in the
		// background, so that the signals the test sends reach it.
		"RUNNING_UNDER_SYSTEMD=true",
	)
	r.start(t)
	t.Cleanup(func() {
		r.mu.Lock()
		if r.conn != nil {
			r.conn.Close()
		}
		r.mu.Unlock()
		r.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("rabbitmq log:\n%s", r.log.String())
		}
	})
	return r
}

// restart SIGKILLs the node: durable queues and persistent messages that
// it confirmed are on disk.
func (r *rabbitmq) restart(t *testing.T) {
	r.stop(syscall.SIGKILL)
	r.mu.Lock()
	r.conn, r.pub = nil, nil
	r.mu.Unlock()
	r.start(t)
}

func (r *rabbitmq) url() string { return fmt.Sprintf("amqp://127.0.0.1:%d", r.port) }

// channel is the test's publishing channel, in confirm mode, reconnected
// after a restart.
func (r *rabbitmq) channel(t *testing.T) *amqp091.Channel {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pub != nil && !r.pub.IsClosed() {
		return r.pub
	}
	var err error
	deadline := time.Now().Add(60 * time.Second)
	for {
		r.conn, err = amqp091.Dial("amqp://guest:guest@" + fmt.Sprintf("127.0.0.1:%d", r.port))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.pub, err = r.conn.Channel(); err != nil {
		t.Fatal(err)
	}
	if err := r.pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	return r.pub
}

func (r *rabbitmq) declare(t *testing.T, queue string) {
	t.Helper()
	if _, err := r.channel(t).QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
}

func (r *rabbitmq) send(t *testing.T, queue string, ps []amqp091.Publishing) {
	t.Helper()
	r.declare(t, queue)
	for len(ps) > 0 {
		ch := r.channel(t)
		var dcs []*amqp091.DeferredConfirmation
		n := min(len(ps), 500)
		failed := false
		for _, p := range ps[:n] {
			dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", queue, false, false, p)
			if err != nil {
				failed = true
				break
			}
			dcs = append(dcs, dc)
		}
		for _, dc := range dcs {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ok, err := dc.WaitContext(ctx)
			cancel()
			failed = failed || err != nil || !ok
		}
		if failed {
			r.mu.Lock()
			r.pub = nil
			r.mu.Unlock()
			continue // sent again: the bridge drops the copies by id
		}
		ps = ps[n:]
	}
}

func (r *rabbitmq) publish(t *testing.T, queue string, ids []string) {
	ps := make([]amqp091.Publishing, len(ids))
	for i, id := range ids {
		ps[i] = amqp091.Publishing{ContentType: "application/json", DeliveryMode: amqp091.Persistent, Body: []byte(`{"id":"` + id + `"}`),
			Headers: amqp091.Table{"cloudEvents:specversion": "1.0", "cloudEvents:id": id, "cloudEvents:source": "/e2e/amqp", "cloudEvents:type": "e2e.in"}}
	}
	r.send(t, queue, ps)
}

func (r *rabbitmq) publishMalformed(t *testing.T, queue string) {
	r.send(t, queue, []amqp091.Publishing{{Body: []byte("x"), Headers: amqp091.Table{"cloudEvents:specversion": "1.0"}}})
}

// received consumes the queue with its own connection, which reconnects
// after a restart.
func (r *rabbitmq) received(t *testing.T, queue string) []string {
	r.mu.Lock()
	_, ok := r.got[queue]
	if !ok {
		r.got[queue] = []string{}
	}
	r.mu.Unlock()
	if !ok {
		r.declare(t, queue)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				c, err := amqp091.Dial(fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d", r.port))
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				ch, err := c.Channel()
				var ds <-chan amqp091.Delivery
				if err == nil {
					// Manual acks: with auto-ack, deliveries the broker wrote
					// just before it was killed are lost with the connection
					// (the reset drops them unread), a loss of the test's
					// reader, not of the bridge.
					ds, err = ch.Consume(queue, "", false, false, false, false, nil)
				}
				for err == nil {
					var d amqp091.Delivery
					select {
					case <-ctx.Done():
						err = ctx.Err()
						continue
					case d, ok = <-ds:
					}
					if !ok {
						break
					}
					id, _ := d.Headers["cloudEvents:id"].(string)
					r.mu.Lock()
					r.got[queue] = append(r.got[queue], id)
					r.mu.Unlock()
					err = d.Ack(false)
				}
				c.Close()
			}
		}()
		t.Cleanup(func() {
			cancel()
			<-done
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got[queue]...)
}

// TestBridgeAMQP: testBridge with RabbitMQ.
func TestBridgeAMQP(t *testing.T) {
	r := startRabbitMQ(t)
	testBridge(t, r, "weft-in", "weft-in", "weft-out")
}
