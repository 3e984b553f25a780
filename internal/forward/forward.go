// Package forward moves streams along their segment lists. The ingress site
// writes the whole path into the stream's [Header] ([NewHeader], [Open]);
// every site the stream reaches decides from the header alone whether it is
// the last segment (deliver), a transit hop (open the next segment and join
// the two) or not on the path (refuse). [Step] is that decision, pure;
// [Serve] carries it out. The reject and reset codes every site answers
// with live here too, so that an ingress reads one table.
//
// The header's wire format is in spec.md beside this file.
package forward

import (
	"context"
	"errors"
	"fmt"
	"time"

	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/observe/tracing"
	"weft.dev/weft/internal/siteid"
)

// Reject codes (link REJECT) and reset codes (link RST) of weft streams.
// They are below link.CodeReserved; their values are on the wire, so they
// never change.
const (
	RejectNoConnector uint16 = 1 // no local connector for the address (any more)
	RejectRefused     uint16 = 2 // the target refused or did not answer
	RejectSaturated   uint16 = 3 // every local connector is at its limit
	RejectNoRoute     uint16 = 4 // a transit site has no link to the next segment
	RejectBadHeader   uint16 = 5 // the stream header does not decode
	RejectMisrouted   uint16 = 6 // this site is not the header's next segment
	RejectUnknownKind uint16 = 7 // the last segment serves no stream of this kind
	// RejectSeal: the last segment could not authenticate the stream's
	// end-to-end seal (internal/seal): missing, forged, replayed, or bound
	// to another path. Not retried with the same candidate.
	RejectSeal uint16 = 10
	// RejectSealSession: the seal names a session the last segment no
	// longer holds (restart, expiry); the ingress handshakes anew.
	RejectSealSession uint16 = 11

	// ResetAborted resets a stream whose other half is gone: a transit
	// site that could not confirm its inbound stream, a connector site
	// that could not take a stream it confirmed.
	ResetAborted uint16 = 16
	// ResetSeal resets a sealed stream one of whose records failed
	// authentication: altered, replayed, reordered or cut short in transit.
	ResetSeal uint16 = 17
)

// OpenTimeout bounds how long a transit site waits for the next segment to
// answer an OPEN, so that a silent neighbour cannot hold a relay.
const OpenTimeout = 10 * time.Second

// NewHeader is the header an ingress site (origin) puts on a stream of kind
// to address along path: the sites after the ingress, the last one serving.
func NewHeader(kind Kind, address string, origin siteid.ID, path []siteid.ID) *Header {
	return &Header{Kind: kind, Address: address, Origin: origin, Segments: path}
}

// Action is what a site does with a stream it received.
type Action uint8

// Actions of a Decision.
const (
	Deliver Action = iota + 1 // this site is the last segment: serve it here
	Relay                     // open a stream to Decision.Next and join the two
	Refuse                    // reject it with Decision.Code
)

// Decision is what Step decided for one stream.
type Decision struct {
	Action Action
	Next   siteid.ID // Relay: the neighbour to open to
	Code   uint16    // Refuse: the reject code
	Reason string    // Refuse: the reject message
}

// Step decides what site self does with a stream whose OPEN carried raw.
// On Deliver and Relay it returns the decoded header; for Relay it is
// already advanced to the next hop, ready to send on.
func Step(self siteid.ID, raw []byte) (*Header, Decision) {
	var h Header
	if err := h.UnmarshalBinary(raw); err != nil {
		return nil, Decision{Action: Refuse, Code: RejectBadHeader, Reason: "malformed stream header: " + err.Error()}
	}
	if h.Segments[h.Next] != self {
		return nil, Decision{Action: Refuse, Code: RejectMisrouted, Reason: fmt.Sprintf("stream misrouted: site %s is not its next segment %s", self, h.Segments[h.Next])}
	}
	if int(h.Next) == len(h.Segments)-1 {
		return &h, Decision{Action: Deliver}
	}
	h.Next++
	return &h, Decision{Action: Relay, Next: h.Segments[h.Next]}
}

// Links finds the link session to a neighbour: nil when there is none.
type Links interface {
	Session(peer siteid.ID) *link.Session
}

// LinksFunc adapts a function to Links.
type LinksFunc func(peer siteid.ID) *link.Session

// Session calls f.
func (f LinksFunc) Session(peer siteid.ID) *link.Session { return f(peer) }

// Open opens a stream through the link to h's next segment and returns once
// the far end confirmed it, or the *link.RejectError with which a site on
// the path refused it. It is how both the ingress and transit sites move a
// stream one hop along its path. The trace context in ctx, if any, goes
// into h, so that the next hop's span is a child of the caller's.
func Open(ctx context.Context, links Links, h *Header) (*link.Stream, error) {
	// The span in ctx, or the remote context a hop received when it
	// records no span itself.
	if t, ok := tracectx.FromSpan(ctx); ok {
		h.Trace = t
	}
	b, err := h.MarshalBinary()
	if err != nil {
		return nil, err
	}
	next := h.Segments[h.Next]
	sess := links.Session(next)
	if sess == nil {
		return nil, &link.RejectError{Code: RejectNoRoute, Message: fmt.Sprintf("no link to site %s", next)}
	}
	return sess.Open(ctx, b)
}

// Serve handles a stream a neighbour opened at site self, until the stream
// ends: it refuses a stream not meant for self, hands one whose path ends
// here to deliver (which must confirm or reject it), and relays the rest to
// their next segment. A refusal further along the path comes back to the
// opener with its code and message, so the ingress sees why. A relayed
// stream that carries a trace context gets a span of tr (nil: none).
func Serve(ctx context.Context, self siteid.ID, st *link.Stream, links Links, tr *tracing.Tracer, deliver func(*link.Stream, *Header)) {
	h, d := Step(self, st.Header())
	switch d.Action {
	case Refuse:
		st.Reject(d.Code, d.Reason)
	case Deliver:
		deliver(st, h)
	case Relay:
		relay(ctx, st, h, links, tr)
	}
}

// relay opens the next segment and joins the two streams. Its span
// covers the connection of a TCP stream and only the opening of the
// others: an HTTP stream is pooled and carries many requests, an event
// stream many events, so their lifetime is no one request's.
func relay(ctx context.Context, in *link.Stream, h *Header, links Links, tr *tracing.Tracer) {
	ctx, span := transitSpan(ctx, tr, h)
	defer span.End()
	octx, cancel := context.WithTimeout(ctx, OpenTimeout)
	out, err := Open(octx, links, h)
	cancel()
	if err != nil {
		var rej *link.RejectError
		if !errors.As(err, &rej) {
			rej = &link.RejectError{Code: RejectNoRoute, Message: fmt.Sprintf("next segment %s: %v", h.Segments[h.Next], err)}
		}
		tracing.Fail(span, rej)
		in.Reject(rej.Code, rej.Message)
		return
	}
	if err := in.Confirm(); err != nil {
		tracing.Fail(span, err)
		out.Reset(ResetAborted)
		return
	}
	if h.Kind != KindTCP {
		span.End()
	}
	Join(in, out)
}
