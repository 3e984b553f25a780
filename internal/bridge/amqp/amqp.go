// Package amqp is the event bridge module for AMQP 0-9-1 brokers such as
// RabbitMQ (amqp://, amqps://), on github.com/rabbitmq/amqp091-go.
//
// CloudEvents travel by the AMQP binding's binary mode: each attribute is a
// header (application property) named cloudEvents: and the attribute's
// name, datacontenttype is the content-type property.
//
//   - In consumes a queue (declared durable if it does not exist) with manual
//     acknowledgements and a prefetch window, acknowledging each message once
//     weft has it: at least once. A plain message's id is its message-id
//     property, else a random UUID.
//   - Out publishes persistent messages (delivery mode 2) with publisher
//     confirms and waits for every confirmation. Its destination is a queue
//     name, published through the default exchange (the queue is declared
//     durable if it does not exist, so that nothing is dropped as
//     unroutable), or EXCHANGE/ROUTING-KEY for an exchange of the user's.
//     The message-id property is the event's id.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"weft.dev/weft/internal/bridge"
	"weft.dev/weft/internal/events/cloudevent"
)

// Binding is the AMQP CloudEvents binding: cloudEvents: properties.
var Binding = bridge.Binding{Prefix: "cloudEvents:"}

func init() {
	bridge.Register(&bridge.Module{Name: "amqp", Binding: Binding, Dial: Dial})
}

// prefetch bounds the messages delivered and not yet acknowledged.
const prefetch = 1024

type conn struct {
	c *amqp091.Connection
	bridge.Ended

	// mu guards pub and declared: the one channel that publishes (a
	// channel is not for concurrent publishers), in confirm mode, and
	// the queues declared through it.
	mu       sync.Mutex
	pub      *amqp091.Channel
	declared map[string]bool
}

// Dial connects.
func Dial(ctx context.Context, cfg bridge.Config) (bridge.Conn, error) {
	u := *cfg.URL
	u.User = nil
	if cfg.Username != "" {
		u.User = url.UserPassword(cfg.Username, cfg.Password)
	}
	ac := amqp091.Config{TLSClientConfig: cfg.TLS, Properties: amqp091.Table{"connection_name": "weft bridge " + cfg.Site + "/" + cfg.Bridge}}
	if d, ok := ctx.Deadline(); ok {
		ac.Dial = amqp091.DefaultDial(max(0, time.Until(d)))
	}
	c, err := amqp091.DialConfig(u.String(), ac)
	if err != nil {
		return nil, err
	}
	cn := &conn{c: c, declared: map[string]bool{}}
	notify := c.NotifyClose(make(chan *amqp091.Error, 1))
	go func() {
		err, ok := <-notify
		if ok && err != nil {
			cn.End(err)
		} else {
			cn.End(errors.New("the connection closed"))
		}
	}()
	return cn, nil
}

func (c *conn) Close() error {
	c.End(errors.New("closed"))
	return c.c.Close()
}

// declare makes sure the durable queue exists, leaving one that does as it
// is (a quorum queue, say, which a plain declaration would not match).
func (c *conn) declare(queue string) error {
	ch, err := c.c.Channel()
	if err != nil {
		return err
	}
	_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err == nil {
		return ch.Close()
	}
	// A failed passive declaration closes the channel.
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.NotFound {
		return fmt.Errorf("queue %q: %w", queue, err)
	}
	if ch, err = c.c.Channel(); err != nil {
		return err
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring queue %q: %w", queue, err)
	}
	return nil
}

func (c *conn) Receive(ctx context.Context, queue string, out chan<- *bridge.Message) error {
	if err := c.declare(queue); err != nil {
		return err
	}
	ch, err := c.c.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	ds, err := ch.ConsumeWithContext(ctx, queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming queue %q: %w", queue, err)
	}
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("the broker ended the consumer of %q", queue)
			}
			m := &bridge.Message{Subject: queue, ContentType: d.ContentType, Key: d.MessageId, Body: d.Body,
				Ack: func() error { return d.Ack(false) }}
			for k, v := range d.Headers {
				if s, ok := headerString(v); ok {
					m.Headers = append(m.Headers, bridge.Header{Name: k, Value: s})
				}
			}
			if ok, err := c.Hand(ctx, out, m); !ok {
				return err
			}
		case <-ctx.Done():
			return nil
		case <-c.Done():
			return c.Err()
		}
	}
}

// headerString is a header's value as a string: attributes are strings in
// binary mode, though a producer may send a time as a timestamp.
func headerString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}

// publisher is the confirm-mode channel, opened on first use.
func (c *conn) publisher() (*amqp091.Channel, error) {
	if c.pub != nil && !c.pub.IsClosed() {
		return c.pub, nil
	}
	ch, err := c.c.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, err
	}
	c.pub = ch
	return ch, nil
}

func (c *conn) Send(ctx context.Context, to string, evs []cloudevent.Event) error {
	exchange, key, viaExchange := strings.Cut(to, "/")
	if !viaExchange {
		exchange, key = "", to
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !viaExchange && !c.declared[key] {
		if err := c.declare(key); err != nil {
			return err
		}
		c.declared[key] = true
	}
	ch, err := c.publisher()
	if err != nil {
		return err
	}
	confirms := make([]*amqp091.DeferredConfirmation, 0, len(evs))
	for i := range evs {
		hs, ct, body, err := bridge.Encode(&evs[i], Binding)
		if err != nil {
			return err
		}
		p := amqp091.Publishing{Headers: amqp091.Table{}, ContentType: ct, Body: body, DeliveryMode: amqp091.Persistent, MessageId: evs[i].ID()}
		for _, h := range hs {
			p.Headers[h.Name] = h.Value
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, p)
		if err != nil {
			return fmt.Errorf("publishing to %q: %w", to, err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the broker refused (nack) a message to %q", to)
		}
	}
	return nil
}
