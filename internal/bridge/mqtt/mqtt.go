// Package mqtt is the event bridge module for MQTT 5 brokers (mqtt://,
// mqtts://), on github.com/eclipse/paho.golang.
//
// CloudEvents travel by the MQTT binding's binary mode: each attribute is a
// user property of its own name, datacontenttype is the content type
// property. In takes messages at QoS 1 in a persistent session (clean start
// off, a day's session expiry, a client ID made of the site's and the
// bridge's names), so that the broker keeps what arrives while weft is away;
// each is acknowledged (PUBACK, in order) once weft has it. Out publishes
// at QoS 1 and waits for each PUBACK, one at a time so that a topic's
// events keep their order. A plain message's id is a random UUID: MQTT has
// no message id that survives a redelivery, so a plain message redelivered
// after an outage comes twice (at least once).
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"weft.dev/weft/internal/bridge"
	"weft.dev/weft/internal/events/cloudevent"
)

// Binding is the MQTT 5 CloudEvents binding: attributes are user
// properties of their own names.
var Binding = bridge.Binding{Prefix: ""}

func init() {
	bridge.Register(&bridge.Module{Name: "mqtt", Binding: Binding, Dial: Dial})
}

// sessionExpiry is how long the broker keeps the bridge's session, and
// what arrives for it, while the site is away: a day, weft's retention.
const sessionExpiry = 24 * 60 * 60

// conn is one MQTT connection.
type conn struct {
	c *paho.Client
	bridge.Ended

	// mu guards subs: which channel takes the messages of each filter.
	// The broker may send the session's messages before Receive has
	// registered its filter: those wait for every filter of the bridge
	// (want) to be (ready).
	mu    sync.Mutex
	subs  map[string]chan<- *bridge.Message
	want  int
	ready chan struct{}
}

// Dial connects with a persistent session.
func Dial(ctx context.Context, cfg bridge.Config) (bridge.Conn, error) {
	host := cfg.URL.Host
	if cfg.URL.Port() == "" {
		host = net.JoinHostPort(cfg.URL.Hostname(), map[bool]string{false: "1883", true: "8883"}[cfg.TLS != nil])
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		tc := tls.Client(nc, cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	c := &conn{subs: map[string]chan<- *bridge.Message{}, want: len(slices.Compact(slices.Sorted(slices.Values(cfg.From)))), ready: make(chan struct{})}
	c.c = paho.NewClient(paho.ClientConfig{
		ClientID:                   clientID(cfg),
		Conn:                       nc,
		EnableManualAcknowledgment: true,
		SendAcksInterval:           5 * time.Millisecond,
		PacketTimeout:              30 * time.Second,
		OnPublishReceived:          []func(paho.PublishReceived) (bool, error){c.received},
		OnClientError:              func(err error) { c.End(err) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			c.End(fmt.Errorf("the broker disconnected (reason %d)", d.ReasonCode))
		},
	})
	expiry, recvMax := uint32(sessionExpiry), uint16(1024)
	cp := &paho.Connect{ClientID: clientID(cfg), KeepAlive: 10, CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry, ReceiveMaximum: &recvMax}}
	if cfg.Username != "" {
		cp.Username, cp.UsernameFlag = cfg.Username, true
	}
	if cfg.Password != "" {
		cp.Password, cp.PasswordFlag = []byte(cfg.Password), true
	}
	ca, err := c.c.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		if ca != nil {
			return nil, fmt.Errorf("the broker refused the connection: %s (reason %d)", ca.Properties.ReasonString, ca.ReasonCode)
		}
		return nil, err
	}
	go func() {
		select {
		case <-c.c.Done():
			c.End(errors.New("the connection ended"))
		case <-c.Done():
		}
	}()
	return c, nil
}

// clientID names the bridge's session at the broker; it must stay the
// same across restarts for the session to be found again.
func clientID(cfg bridge.Config) string { return "weft-" + cfg.Site + "-" + cfg.Bridge }

// received routes a message to the Receive whose filter it matches.
func (c *conn) received(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	select {
	case <-c.ready:
	case <-c.Done():
		return true, nil
	}
	c.mu.Lock()
	var ch chan<- *bridge.Message
	for f, sub := range c.subs {
		if match(f, p.Topic) {
			ch = sub
			break
		}
	}
	c.mu.Unlock()
	if ch == nil {
		// A subscription of the session that no In has any more.
		return true, c.c.Ack(p)
	}
	m := &bridge.Message{Subject: p.Topic, Body: p.Payload, Ack: func() error { return c.c.Ack(p) }}
	if pp := p.Properties; pp != nil {
		m.ContentType = pp.ContentType
		for _, u := range pp.User {
			m.Headers = append(m.Headers, bridge.Header{Name: u.Key, Value: u.Value})
		}
	}
	select {
	case ch <- m:
	case <-c.Done():
	}
	return true, nil
}

// Receive subscribes to the filter at QoS 1.
func (c *conn) Receive(ctx context.Context, filter string, out chan<- *bridge.Message) error {
	c.mu.Lock()
	c.subs[filter] = out
	select {
	case <-c.ready:
	default:
		if len(c.subs) >= c.want {
			close(c.ready)
		}
	}
	c.mu.Unlock()
	if _, err := c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		c.End(err)
		return fmt.Errorf("subscribing to %q: %w", filter, err)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-c.Done():
		return c.Err()
	}
}

// Send publishes each event at QoS 1 and waits for its PUBACK.
func (c *conn) Send(ctx context.Context, topic string, evs []cloudevent.Event) error {
	for i := range evs {
		hs, ct, body, err := bridge.Encode(&evs[i], Binding)
		if err != nil {
			return err
		}
		props := &paho.PublishProperties{ContentType: ct}
		for _, h := range hs {
			props.User = append(props.User, paho.UserProperty{Key: h.Name, Value: h.Value})
		}
		if _, err := c.c.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: body, Properties: props}); err != nil {
			c.End(err)
			return fmt.Errorf("publishing to %q: %w", topic, err)
		}
	}
	return nil
}

func (c *conn) Close() error {
	c.End(errors.New("closed"))
	c.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	return nil
}

// match reports whether an MQTT topic filter (with + and #) matches topic.
func match(filter, topic string) bool {
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		if f == "#" {
			return true
		}
		if i >= len(ts) || f != "+" && f != ts[i] {
			return false
		}
	}
	return len(fs) == len(ts)
}
