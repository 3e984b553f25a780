// Package nats is the event bridge module for NATS (nats://), on
// github.com/nats-io/nats.go, with JetStream where the broker has a stream
// for the subject.
//
// CloudEvents travel by the NATS binding's binary mode: each attribute is
// a header named ce- and the attribute's name, datacontenttype is the
// Content-Type header.
//
// Whether a subject is durable is the broker's to say, not the Bridge's:
//   - In from a subject that a JetStream stream captures reads it through a
//     durable pull consumer (named after the site, the bridge and the
//     subject, delivering what arrives from its creation on), acknowledging
//     each message once weft has it: at least once. A plain message's id is
//     its Nats-Msg-Id header, else the stream and its sequence there, which
//     stay the same across redeliveries. From any other subject it
//     subscribes (core NATS, at most once); the id is Nats-Msg-Id or a UUID.
//   - Out to a subject that a stream captures publishes with JetStream and
//     waits for every publish acknowledgement, with Nats-Msg-Id set to the
//     event's source and id so that the stream drops a resend within its
//     duplicate window. To any other subject it publishes and flushes
//     (core NATS: the server has it, no subscriber may).
package nats

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"weft.dev/weft/internal/bridge"
	"weft.dev/weft/internal/events/cloudevent"
)

// Binding is the NATS CloudEvents binding: ce- headers.
var Binding = bridge.Binding{Prefix: "ce-"}

func init() {
	bridge.Register(&bridge.Module{Name: "nats", Binding: Binding, Dial: Dial})
}

type conn struct {
	cfg bridge.Config
	nc  *nats.Conn
	js  jetstream.JetStream
	bridge.Ended

	// mu guards streams: the stream that captures a subject, "" for none.
	mu      sync.Mutex
	streams map[string]string
}

// Dial connects. The bridge's runner reconnects, so the client does not.
func Dial(ctx context.Context, cfg bridge.Config) (bridge.Conn, error) {
	c := &conn{cfg: cfg, streams: map[string]string{}}
	opts := []nats.Option{
		nats.Name("weft bridge " + cfg.Site + "/" + cfg.Bridge),
		nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { c.End(errors.New("the connection closed")) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { c.End(fmt.Errorf("disconnected: %v", err)) }),
	}
	if d, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(max(0, time.Until(d))))
	}
	if cfg.Username != "" {
		opts = append(opts, nats.UserInfo(cfg.Username, cfg.Password))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	u := *cfg.URL
	u.User = nil
	nc, err := nats.Connect(u.String(), opts...)
	if err != nil {
		return nil, err
	}
	c.nc = nc
	if c.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024)); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *conn) Close() error {
	c.End(errors.New("closed"))
	c.nc.Close()
	return nil
}

// stream is the JetStream stream that captures subject, "" when none does
// (or the server has no JetStream).
func (c *conn) stream(ctx context.Context, subject string) (string, error) {
	c.mu.Lock()
	s, ok := c.streams[subject]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	// JetStream's requests need a deadline.
	lctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	s, err := c.js.StreamNameBySubject(lctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount), errors.Is(err, nats.ErrNoResponders):
		s = ""
	case err != nil:
		return "", fmt.Errorf("looking up the stream of %q: %w", subject, err)
	}
	c.mu.Lock()
	c.streams[subject] = s
	c.mu.Unlock()
	return s, nil
}

// requestTimeout bounds a request to the server (a stream lookup, a
// consumer's creation, a flush).
const requestTimeout = 10 * time.Second

// ackWait is how long JetStream waits for an acknowledgement before it
// delivers a message again: what a site that was killed had taken comes
// again this long after, rather than after JetStream's default of 30 s.
// weft acknowledges within a batch's store commit, far below it.
const ackWait = 10 * time.Second

// consumerName names the durable consumer of a bridge's In: the same
// across restarts, and a valid consumer name whatever the subject.
func consumerName(cfg bridge.Config, subject string) string {
	h := sha256.Sum256([]byte(subject))
	return "weft-" + strings.NewReplacer(".", "_", "*", "_", ">", "_").Replace(cfg.Site+"-"+cfg.Bridge) + "-" + hex.EncodeToString(h[:6])
}

func (c *conn) Receive(ctx context.Context, subject string, out chan<- *bridge.Message) error {
	stream, err := c.stream(ctx, subject)
	if err != nil {
		return err
	}
	if stream == "" {
		return c.receiveCore(ctx, subject, out)
	}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	cons, err := c.js.CreateOrUpdateConsumer(cctx, stream, jetstream.ConsumerConfig{
		Durable: consumerName(c.cfg, subject), FilterSubject: subject,
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
		MaxAckPending: 4096, AckWait: ackWait,
	})
	if err != nil {
		return fmt.Errorf("the durable consumer of %q on stream %s: %w", subject, stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return err
	}
	defer it.Stop()
	go func() {
		select {
		case <-ctx.Done():
		case <-c.Done():
		}
		it.Stop()
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consuming %q: %w", subject, err)
		}
		m := message(msg.Subject(), msg.Headers(), msg.Data())
		if m.Key == "" {
			if md, err := msg.Metadata(); err == nil {
				m.Key = fmt.Sprintf("%s/%d", md.Stream, md.Sequence.Stream)
			}
		}
		m.Ack = msg.Ack
		if ok, err := c.Hand(ctx, out, m); !ok {
			return err
		}
	}
}

func (c *conn) receiveCore(ctx context.Context, subject string, out chan<- *bridge.Message) error {
	ch := make(chan *nats.Msg, 4096)
	sub, err := c.nc.ChanSubscribe(subject, ch)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	for {
		select {
		case msg := <-ch:
			if ok, err := c.Hand(ctx, out, message(msg.Subject, msg.Header, msg.Data)); !ok {
				return err
			}
		case <-ctx.Done():
			return nil
		case <-c.Done():
			return c.Err()
		}
	}
}

func message(subject string, h nats.Header, data []byte) *bridge.Message {
	m := &bridge.Message{Subject: subject, Body: data, Key: h.Get(jetstream.MsgIDHeader)}
	for k, vs := range h {
		if strings.EqualFold(k, "Content-Type") {
			m.ContentType = vs[0]
			continue
		}
		for _, v := range vs {
			m.Headers = append(m.Headers, bridge.Header{Name: k, Value: v})
		}
	}
	return m
}

func (c *conn) Send(ctx context.Context, subject string, evs []cloudevent.Event) error {
	stream, err := c.stream(ctx, subject)
	if err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	for i := range evs {
		hs, ct, body, err := bridge.Encode(&evs[i], Binding)
		if err != nil {
			return err
		}
		msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
		for _, h := range hs {
			msg.Header.Set(h.Name, h.Value)
		}
		if ct != "" {
			msg.Header.Set("Content-Type", ct)
		}
		if stream == "" {
			if err := c.nc.PublishMsg(msg); err != nil {
				return err
			}
			continue
		}
		f, err := c.js.PublishMsgAsync(msg, jetstream.WithMsgID(evs[i].Source()+" "+evs[i].ID()))
		if err != nil {
			return fmt.Errorf("publishing to %q: %w", subject, err)
		}
		futures = append(futures, f)
	}
	if stream == "" {
		fctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		return c.nc.FlushWithContext(fctx)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publishing to %q: %w", subject, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Done():
			return c.Err()
		}
	}
	return nil
}
