// Package bridge connects a site's event mesh to the brokers a site already
// runs: Kafka, AMQP 0-9-1 (RabbitMQ), MQTT 5 and NATS. A Bridge resource
// names one broker; its In entries take the broker's messages into weft
// topics or queues, its Out entries send the events of weft topics, or of
// weft queues it consumes, to the broker.
//
// Each broker kind is a Module in a sub-package that registers itself, as
// Caddy's modules do (Register in an init function, looked up by the broker
// URL's scheme): the site imports the sub-packages, and this package runs
// any of them the same way. A module only dials, receives and sends; this
// package does everything else: the CloudEvents mapping (codec.go), the
// reconnection with backoff, batching, acknowledgements and status
// (runner.go), and the configuration (manager.go).
//
// Delivery, the contract every module keeps:
//   - In: a message is acknowledged to the broker (Message.Ack) only after
//     weft stored it (a persisted topic or queue) or forwarded it (volatile).
//     The events' CloudEvents source+id drop duplicates: the store's dedup
//     keys for persisted topics, a window in memory for volatile ones.
//   - Out: events of a persisted topic are read from the site's inbox from a
//     stored cursor (broker.Tap), which moves only once Conn.Send returned,
//     that is once the broker acknowledged them: at least once across broker
//     outages and site restarts.
//   - Out of a queue: the bridge is one of the queue's consumers at its site
//     (broker.OpenQueueTap); a persisted queue's entry counts as taken only
//     once Conn.Send returned, so it is sent at least once, and while the
//     broker is away entries wait at the site (as for a busy consumer).
//   - A message that is not a valid CloudEvent, nor a plain message that can
//     be made one, is skipped and acknowledged, with a logged reason and the
//     metric weft_bridge_malformed_total: it never stalls a bridge.
package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"sync"

	"weft.dev/weft/internal/events/cloudevent"
)

// Module is one kind of broker.
type Module struct {
	// Name is the broker kind, the URL scheme without its TLS variant:
	// kafka, amqp, mqtt, nats.
	Name string
	// Binding is how the module's messages carry CloudEvents.
	Binding Binding
	// Dial connects to the broker. It must return once connected or
	// failed, and the Conn must end every Receive with an error when the
	// connection is lost.
	Dial func(ctx context.Context, cfg Config) (Conn, error)
}

// Config is what a module dials with.
type Config struct {
	// Bridge is the Bridge's name; with Site it makes client IDs and
	// durable consumer names that survive a restart.
	Bridge, Site string
	// URL is the broker's URL, Scheme its scheme (amqps and mqtts say
	// TLS).
	URL *url.URL
	// Username and Password come from the Bridge's secret file.
	Username, Password string
	// From lists the broker sources of the bridge's In entries, each of
	// which gets a Receive: a module whose broker sends a session's
	// messages before they are asked for (MQTT) waits for them all.
	From []string
	// TLS is set for amqps://, mqtts://, and for kafka:// and nats://
	// when the secret file names a CA or a client certificate.
	TLS *tls.Config
}

// Conn is one connection to a broker. Receive and Send may be called
// concurrently, several of each.
type Conn interface {
	// Receive consumes from, the broker's source (MQTT topic filter, Kafka
	// topic, AMQP queue, NATS subject), into out until ctx ends or the
	// connection fails, and returns why. A message's Ack must be called,
	// in the order the messages came, once weft has it.
	Receive(ctx context.Context, from string, out chan<- *Message) error
	// Send sends events to the broker's destination to and returns once
	// the broker acknowledged every one of them, or the first failure.
	Send(ctx context.Context, to string, evs []cloudevent.Event) error
	// Close ends the connection; Receive calls then return.
	Close() error
}

// ErrUnknownBroker is returned for a broker URL whose scheme no module has.
var ErrUnknownBroker = errors.New("no bridge module for this broker scheme")

var (
	modulesMu sync.Mutex
	modules   = map[string]*Module{}
)

// Register adds a module; sub-packages call it from init. A second module
// of one name is a programmer error.
func Register(m *Module) {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if _, dup := modules[m.Name]; dup {
		panic("bridge: module " + m.Name + " registered twice")
	}
	modules[m.Name] = m
}

// lookup is the module for a broker kind (resource.BridgeScheme).
func lookup(kind string) (*Module, error) {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m := modules[kind]; m != nil {
		return m, nil
	}
	var have []string
	for n := range modules {
		have = append(have, n)
	}
	sort.Strings(have)
	return nil, fmt.Errorf("%w %q: this weft has %v", ErrUnknownBroker, kind, have)
}
