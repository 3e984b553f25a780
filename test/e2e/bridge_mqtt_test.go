package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// mosquitto is a Debian mosquitto process with persistence, so that
// sessions and queued QoS 1 messages survive its restart.
type mosquitto struct {
	brokerProc
	dir  string
	port int

	mu    sync.Mutex
	got   map[string][]string // topic -> ids received by the consumer
	conns map[string]*autopaho.ConnectionManager
}

func startMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	m := &mosquitto{
		dir:  t.TempDir(),
		port: freePort(t),
		got:  map[string][]string{}, conns: map[string]*autopaho.ConnectionManager{},
	}
	conf := filepath.Join(m.dir, "mosquitto.conf")
	m.brokerProc = brokerProc{name: "mosquitto", args: []string{needBinary(t, "mosquitto", "apt-get install mosquitto, or run .ci/install-bridge-deps.sh"), "-c", conf},
		addr: fmt.Sprintf("127.0.0.1:%d", m.port), boot: 10 * time.Second}
	// Queues without limits, for sessions that are away while the test
	// publishes thousands of messages; persistence written on shutdown;
	// the user the test runs as (started as root, mosquitto would become
	// the user mosquitto, who cannot write into the test's directory).
	text := fmt.Sprintf("user %s\nlistener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_dest stdout\n", currentUser(t), m.port, m.dir)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	m.start(t)
	t.Cleanup(func() {
		for _, c := range m.conns {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.Disconnect(ctx)
			cancel()
		}
		m.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.log.String())
		}
	})
	return m
}

func currentUser(t *testing.T) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// restart stops mosquitto with SIGTERM: it writes its persistence only on
// shutdown (or every autosave_interval), so a SIGKILL would lose what any
// broker without a write-ahead log loses, which is not the bridge's to test.
func (m *mosquitto) restart(t *testing.T) {
	m.stop(syscall.SIGTERM)
	m.start(t)
}

func (m *mosquitto) url() string { return fmt.Sprintf("mqtt://127.0.0.1:%d", m.port) }

// client is a reconnecting MQTT 5 client with a persistent session.
func (m *mosquitto) client(t *testing.T, id string, up func(*autopaho.ConnectionManager), onMsg func(paho.PublishReceived) (bool, error)) *autopaho.ConnectionManager {
	t.Helper()
	u, _ := url.Parse(m.url())
	cfg := autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 10, SessionExpiryInterval: 3600, ConnectRetryDelay: 50 * time.Millisecond,
		ReconnectBackoff: func(int) time.Duration { return 50 * time.Millisecond },
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			if up != nil {
				up(cm)
			}
		},
		ClientConfig: paho.ClientConfig{ClientID: id},
	}
	if onMsg != nil {
		cfg.ClientConfig.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onMsg}
	}
	cm, err := autopaho.NewConnection(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.conns[id] = cm
	m.mu.Unlock()
	return cm
}

func (m *mosquitto) publisher(t *testing.T) *autopaho.ConnectionManager {
	m.mu.Lock()
	cm := m.conns["e2e-pub"]
	m.mu.Unlock()
	if cm == nil {
		cm = m.client(t, "e2e-pub", nil, nil)
	}
	return cm
}

// publish sends at QoS 1 and retries through a broker restart.
func (m *mosquitto) publish(t *testing.T, topic string, ids []string) {
	t.Helper()
	cm := m.publisher(t)
	for _, id := range ids {
		p := &paho.Publish{QoS: 1, Topic: topic, Payload: []byte(`{"id":"` + id + `"}`), Properties: &paho.PublishProperties{
			ContentType: "application/json",
			User:        paho.UserProperties{{Key: "specversion", Value: "1.0"}, {Key: "id", Value: id}, {Key: "source", Value: "/e2e/mqtt"}, {Key: "type", Value: "e2e.in"}},
		}}
		m.retry(t, cm, p)
	}
}

func (m *mosquitto) retry(t *testing.T, cm *autopaho.ConnectionManager, p *paho.Publish) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cm.Publish(ctx, p)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publishing to mosquitto: %v", err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		cm.AwaitConnection(ctx)
		cancel()
	}
}

func (m *mosquitto) publishMalformed(t *testing.T, topic string) {
	m.retry(t, m.publisher(t), &paho.Publish{QoS: 1, Topic: topic, Payload: []byte("x"), Properties: &paho.PublishProperties{
		User: paho.UserProperties{{Key: "specversion", Value: "1.0"}},
	}})
}

func (m *mosquitto) received(t *testing.T, topic string) []string {
	m.mu.Lock()
	_, ok := m.got[topic]
	if !ok {
		m.got[topic] = []string{}
	}
	m.mu.Unlock()
	if !ok {
		m.client(t, "e2e-sub-"+topic, func(cm *autopaho.ConnectionManager) {
			go cm.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
		}, func(pr paho.PublishReceived) (bool, error) {
			id := ""
			if pr.Packet.Properties != nil {
				for _, u := range pr.Packet.Properties.User {
					if u.Key == "id" {
						id = u.Value
					}
				}
			}
			m.mu.Lock()
			m.got[topic] = append(m.got[topic], id)
			m.mu.Unlock()
			return true, nil
		})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.got[topic]...)
}

// TestBridgeMQTT: testBridge with mosquitto.
func TestBridgeMQTT(t *testing.T) {
	m := startMosquitto(t)
	testBridge(t, m, "plant/+/temp", "plant/7/temp", "weft/out")
}
