package events

import (
	"encoding/binary"
)

// Messages of a publish stream: a WebSocket at the event API over which a
// client publishes batches of events without one HTTP request per batch
// (spec.md, "Publish streams"). Each is one binary WebSocket message: a type
// byte and the type's fields, encoded as the frames between sites are.
const (
	// PubBatch (client to site): seq, count, then count events, each a
	// byte string holding a structured-mode CloudEvent in JSON.
	PubBatch byte = 1
	// PubHello (site to client, first): window, max message.
	PubHello byte = 1
	// PubAck (site to client): seq; every batch up to seq is done.
	PubAck byte = 2
	// PubRefuse (site to client): seq, code, message, retry-after
	// seconds; batch seq was refused whole, and is done.
	PubRefuse byte = 3
)

// Bounds of a publish stream.
const (
	// MaxPubBatch bounds the events of one batch message.
	MaxPubBatch = 10000
	// MaxPubMessage bounds one message of a publish stream: a batch of
	// events of the default size limit fills it.
	MaxPubMessage = 8 << 20
	// maxPubText bounds a refusal's code and message.
	maxPubText = 4096
)

// PubReply is a decoded message from the site; which fields are set depends
// on Type.
type PubReply struct {
	Type byte
	// Window is how many batches a client may have sent and not had
	// answered (PubHello).
	Window uint64
	// MaxMessage is the largest batch message the site reads (PubHello).
	MaxMessage uint64
	// Seq is the batch answered (PubAck, PubRefuse).
	Seq uint64
	// Code and Message say why a batch was refused, and RetryAfter is how
	// many seconds a client should wait before retrying it; 0 when it
	// should not retry as it is (PubRefuse).
	Code, Message string
	RetryAfter    uint64
}

// AppendPubBatch appends a batch message of evs, numbered seq, to b.
func AppendPubBatch(b []byte, seq uint64, evs [][]byte) []byte {
	b = append(b, PubBatch)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for _, e := range evs {
		b = appendBytes(b, e)
	}
	return b
}

// DecodePubBatch decodes a batch message. The events alias b. Each event is
// at most maxEvent bytes; a batch holds 1 to MaxPubBatch of them.
func DecodePubBatch(b []byte, maxEvent int) (seq uint64, evs [][]byte, err error) {
	d := fdec{b: b}
	if t := d.byte(); d.err == nil && t != PubBatch {
		d.fail("message type %d from a publisher", t)
	}
	seq = d.uvarint(^uint64(0))
	n := d.uvarint(MaxPubBatch)
	if d.err == nil && n == 0 {
		d.fail("empty batch")
	}
	// Each event takes at least its length byte: bound the allocation by
	// what is left.
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("%d events in %d bytes", n, len(d.b))
	}
	if d.err == nil {
		evs = make([][]byte, n)
	}
	for i := 0; d.err == nil && i < len(evs); i++ {
		evs[i] = d.bytes(maxEvent)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return 0, nil, d.err
	}
	return seq, evs, nil
}

// AppendPubHello appends a hello message to b.
func AppendPubHello(b []byte, window, maxMessage uint64) []byte {
	b = binary.AppendUvarint(append(b, PubHello), window)
	return binary.AppendUvarint(b, maxMessage)
}

// AppendPubAck appends an acknowledgement of every batch up to seq to b.
func AppendPubAck(b []byte, seq uint64) []byte {
	return binary.AppendUvarint(append(b, PubAck), seq)
}

// AppendPubRefuse appends the refusal of batch seq to b; code and message
// are cut to 4096 bytes.
func AppendPubRefuse(b []byte, seq uint64, code, message string, retryAfter uint64) []byte {
	b = binary.AppendUvarint(append(b, PubRefuse), seq)
	b = appendBytes(b, []byte(code[:min(len(code), maxPubText)]))
	b = appendBytes(b, []byte(message[:min(len(message), maxPubText)]))
	return binary.AppendUvarint(b, retryAfter)
}

// DecodePubReply decodes a message from the site.
func DecodePubReply(b []byte) (PubReply, error) {
	d := fdec{b: b}
	r := PubReply{Type: d.byte()}
	switch r.Type {
	case PubHello:
		r.Window = d.uvarint(^uint64(0))
		r.MaxMessage = d.uvarint(^uint64(0))
		if d.err == nil && r.Window == 0 {
			d.fail("window 0")
		}
	case PubAck:
		r.Seq = d.uvarint(^uint64(0))
	case PubRefuse:
		r.Seq = d.uvarint(^uint64(0))
		r.Code = string(d.bytes(maxPubText))
		r.Message = string(d.bytes(maxPubText))
		r.RetryAfter = d.uvarint(^uint64(0))
	default:
		if d.err == nil {
			d.fail("unknown message type %d from the site", r.Type)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return PubReply{}, d.err
	}
	return r, nil
}
