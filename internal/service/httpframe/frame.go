// Package httpframe is weft's binary framing of HTTP requests and answers
// on a link stream between the ingress site and the connector site
// (stream kind 5, forward.KindHTTPFrame). The ingress has already parsed
// the client's request; it sends method, target, header fields and body as
// frames, and the connector site builds the request for its target from
// them without parsing text. The answer comes back the same way. Layout,
// limits and the keep-alive rule in spec.md.
//
// The package is pure encoding: it reads from a bufio.Reader and appends
// to byte slices, and holds no stream, goroutine or clock.
package httpframe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Type is a frame's type.
type Type uint8

// Frame types.
const (
	TypeRequest  Type = 1 // the head of a request: method, target, host, header fields
	TypeResponse Type = 2 // the head of an answer: status, header fields
	TypeData     Type = 3 // a piece of a body
	TypeEnd      Type = 4 // the end of a body: trailer fields; in an answer, whether the stream stays open
)

// Limits.
const (
	// FrameHeaderLen is the size of a frame's header: type and length.
	FrameHeaderLen = 4
	// MaxHead bounds a head or end frame's payload, as net/http's
	// DefaultMaxHeaderBytes bounds a request's header block.
	MaxHead = 1 << 20
	// MaxData bounds a data frame's payload.
	MaxData = 1 << 16
	// MaxFields bounds the header (or trailer) fields of one frame.
	MaxFields = 1024
)

// ErrFrame is returned for bytes that are not a valid frame sequence.
var ErrFrame = errors.New("httpframe: malformed frame")

// AppendFrameHeader appends the header of a frame of type t with n bytes
// of payload. The caller keeps n within the type's limit.
func AppendFrameHeader(b []byte, t Type, n int) []byte {
	return append(b, byte(t), byte(n>>16), byte(n>>8), byte(n))
}

// ReadFrameHeader reads a frame header and checks the type is known and
// the length within its limit. io.EOF means the stream ended cleanly
// between frames.
func ReadFrameHeader(r *bufio.Reader) (Type, int, error) {
	h, err := r.Peek(FrameHeaderLen)
	if err != nil {
		if err == io.EOF && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	t, n := Type(h[0]), int(h[1])<<16|int(h[2])<<8|int(h[3])
	r.Discard(FrameHeaderLen)
	switch t {
	case TypeRequest, TypeResponse, TypeEnd:
		if n > MaxHead {
			return 0, 0, fmt.Errorf("%w: %d-byte head, the limit is %d", ErrFrame, n, MaxHead)
		}
	case TypeData:
		if n == 0 || n > MaxData {
			return 0, 0, fmt.Errorf("%w: %d-byte data frame, want 1 to %d", ErrFrame, n, MaxData)
		}
	default:
		return 0, 0, fmt.Errorf("%w: unknown type %d", ErrFrame, t)
	}
	return t, n, nil
}

// ReadPayload reads a head or end frame's n bytes of payload into buf's
// storage when it is large enough.
func ReadPayload(r *bufio.Reader, n int, buf []byte) ([]byte, error) {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// decoder reads a payload's fields, recording the first error. The
// strings it returns share one copy of the payload (made on the first
// one), not one allocation each.
type decoder struct {
	b   []byte // what is left to read
	p   []byte // the whole payload
	s   string // p as a string, once a string was read
	err error
}

func newDecoder(p []byte) decoder { return decoder{b: p, p: p} }

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrFrame, what)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("truncated " + what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a length-prefixed string's bytes, aliasing the payload.
// what is joined to its error text only on failure: a concatenation per
// field was 2% of the connector site's CPU.
func (d *decoder) bytes(what string) []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail("bad " + what + " length")
		return nil
	}
	d.b = d.b[k:]
	if n > uint64(len(d.b)) {
		d.fail("truncated " + what)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// str returns b, bytes that bytes returned, as a string sharing the
// payload's one string copy.
func (d *decoder) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if d.s == "" {
		d.s = string(d.p)
	}
	off := cap(d.p) - cap(b) // b is d.p[off : off+len(b)]
	return d.s[off : off+len(b)]
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d bytes after the last field", len(d.b)))
	}
	return d.err
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
