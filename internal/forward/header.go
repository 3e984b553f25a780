package forward

import (
	"errors"
	"fmt"

	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/siteid"
)

// Kind says which subsystem serves a stream at its last segment.
type Kind uint8

// Stream kinds.
const (
	KindTCP   Kind = 1 // a TCP connection, to a connector (service)
	KindHTTP  Kind = 2 // a stream of HTTP requests, to an http connector (service)
	KindEvent Kind = 3 // an event flow, to the broker (events)
	// KindPacket is a stream of IP packets of a vL3 network, to the site
	// owning their destinations (internal/vl3).
	KindPacket Kind = 4
	// KindHTTPFrame is a stream of HTTP requests in weft's own framing
	// (internal/service/httpframe), to an http connector (service).
	KindHTTPFrame Kind = 5
)

// String names k for logs and spans.
func (k Kind) String() string {
	switch k {
	case KindTCP:
		return "tcp"
	case KindHTTP:
		return "http"
	case KindEvent:
		return "event"
	case KindHTTPFrame:
		return "http-frame"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// Header limits.
const (
	MaxAddressLen = 253
	MaxSegments   = 32
	// MaxSealLen bounds the end-to-end seal preamble (internal/seal) that
	// transit sites carry without reading.
	MaxSealLen    = 160
	headerVersion = 2
	// flagTrace in Flags says a trace context follows the seal.
	flagTrace = 0x01
	traceLen  = tracectx.ContextSize
)

// Header is what an ingress site puts in a stream's OPEN: the service
// address and the whole path as site IDs (SRv6-like); each transit site
// forwards to Segments[Next] after incrementing Next. Layout in spec.md.
type Header struct {
	Kind     Kind
	Address  string
	Origin   siteid.ID
	Segments []siteid.ID
	Next     uint8 // index of the segment this hop forwards to
	Flags    uint8
	// Seal is the ingress's end-to-end preamble for the last segment
	// (internal/seal): opaque to transit sites, which pass it on unchanged.
	Seal []byte
	// Trace is the W3C trace context of the span that opened this hop,
	// zero when the stream is not traced. Each hop replaces it with its own
	// span's, so the next hop's span is that span's child.
	Trace TraceContext
}

// TraceContext is a W3C trace context carried with a stream.
type TraceContext = tracectx.Context

// ErrBadHeader is returned for a stream header that does not decode or
// breaks a limit.
var ErrBadHeader = errors.New("bad stream header")

func (h *Header) validate() error {
	switch {
	case h.Kind < KindTCP || h.Kind > KindHTTPFrame:
		return fmt.Errorf("%w: unknown kind %d", ErrBadHeader, h.Kind)
	case len(h.Address) > MaxAddressLen:
		return fmt.Errorf("%w: address of %d bytes", ErrBadHeader, len(h.Address))
	case len(h.Segments) > MaxSegments:
		return fmt.Errorf("%w: %d segments", ErrBadHeader, len(h.Segments))
	case int(h.Next) >= len(h.Segments):
		return fmt.Errorf("%w: next %d of %d segments", ErrBadHeader, h.Next, len(h.Segments))
	case len(h.Seal) > MaxSealLen:
		return fmt.Errorf("%w: seal preamble of %d bytes", ErrBadHeader, len(h.Seal))
	case !h.Trace.IsZero() && !h.Trace.Valid():
		return fmt.Errorf("%w: trace context with a zero trace or span ID", ErrBadHeader)
	}
	return nil
}

// MarshalBinary encodes h after checking the same limits UnmarshalBinary
// enforces.
func (h *Header) MarshalBinary() ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	flags := h.Flags &^ flagTrace
	if !h.Trace.IsZero() {
		flags |= flagTrace
	}
	b := make([]byte, 0, 7+len(h.Address)+16+16*len(h.Segments)+len(h.Seal)+traceLen)
	b = append(b, headerVersion, byte(h.Kind), flags, h.Next, byte(len(h.Address)))
	b = append(b, h.Address...)
	b = append(b, h.Origin[:]...)
	b = append(b, byte(len(h.Segments)))
	for i := range h.Segments {
		b = append(b, h.Segments[i][:]...)
	}
	b = append(b, byte(len(h.Seal)))
	b = append(b, h.Seal...)
	if flags&flagTrace != 0 {
		b = h.Trace.Append(b)
	}
	return b, nil
}

// UnmarshalBinary decodes b, which must be exactly one encoded header.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < 5 {
		return fmt.Errorf("%w: %d bytes", ErrBadHeader, len(b))
	}
	if b[0] != headerVersion {
		return fmt.Errorf("%w: version %d", ErrBadHeader, b[0])
	}
	var d Header
	d.Kind, d.Flags, d.Next = Kind(b[1]), b[2]&^flagTrace, b[3]
	tlen := 0
	if b[2]&flagTrace != 0 {
		tlen = traceLen
	}
	alen := int(b[4])
	rest := b[5:]
	if alen > MaxAddressLen || len(rest) < alen+16+1 {
		return fmt.Errorf("%w: truncated", ErrBadHeader)
	}
	d.Address = string(rest[:alen])
	rest = rest[alen:]
	copy(d.Origin[:], rest)
	nseg := int(rest[16])
	rest = rest[17:]
	if nseg > MaxSegments {
		return fmt.Errorf("%w: %d segments", ErrBadHeader, nseg)
	}
	if len(rest) < 16*nseg+1 {
		return fmt.Errorf("%w: truncated segments", ErrBadHeader)
	}
	slen := int(rest[16*nseg])
	if len(rest) != 16*nseg+1+slen+tlen {
		return fmt.Errorf("%w: %d bytes after %d segments, want a seal of %d and a trace context of %d", ErrBadHeader, len(rest), nseg, slen, tlen)
	}
	if slen > MaxSealLen {
		return fmt.Errorf("%w: seal preamble of %d bytes", ErrBadHeader, slen)
	}
	if slen > 0 {
		d.Seal = append([]byte(nil), rest[16*nseg+1:16*nseg+1+slen]...)
	}
	if tlen > 0 {
		d.Trace = tracectx.ReadContext(rest[16*nseg+1+slen:])
	}
	if nseg > 0 {
		d.Segments = make([]siteid.ID, nseg)
		for i := range d.Segments {
			copy(d.Segments[i][:], rest[16*i:])
		}
	}
	if err := d.validate(); err != nil {
		return err
	}
	*h = d
	return nil
}
