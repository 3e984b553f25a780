package events

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/siteid"
)

// Frames carried by event streams between sites. Layout (spec.md beside this
// file): a 4-byte big-endian length of the rest, then the type byte and the
// type's fields. Integers are uvarints, strings and byte slices are
// uvarint-length-prefixed, site IDs are 16 raw bytes.
const (
	// FrameEvent carries an event along a multicast tree (volatile).
	// Fields: kind, subject, origin, paths (count, then per path a segment
	// count and the IDs), sites, payload.
	FrameEvent byte = 1
	// FrameData carries one entry of a persisted log to the next hop, for
	// the destination sites in Sites. Fields: kind, subject, origin, sites,
	// payload.
	FrameData byte = 2
	// FrameMark closes a run of FrameData: the receiver must acknowledge
	// Mark once it has stored them (and everything before). Marks count up
	// from 1 on each stream. Fields: mark.
	FrameMark byte = 3
	// FrameAck acknowledges every mark up to Mark. Fields: mark.
	FrameAck byte = 4

	// frameTraced, set in the type byte of a FrameEvent or FrameData, says
	// that a trace context (tracectx.ContextSize bytes) follows the type
	// byte: the span of the hop that sent the event. Only traced events
	// carry it, so an untraced frame is as before.
	frameTraced byte = 0x80
)

// Bounds of the frame decoder: a frame comes from another site.
const (
	MaxPayload   = 1 << 20 // an event, as the HTTP API accepts it
	MaxPaths     = 4096    // destinations of one multicast frame
	maxFrameSize = MaxPayload + 64<<10
	// maxSegments is forward.MaxSegments: a tree path is a stream path.
	maxSegments = 32
)

// QueueSite is the pseudo-site a persisted queue's entries are addressed to:
// the first 16 bytes of SHA-256 of "queue:" and the name. Each site resolves
// it to its next hop toward the nearest consumer (spec.md).
func QueueSite(queue string) siteid.ID {
	h := sha256.Sum256([]byte("queue:" + queue))
	return siteid.ID(h[:16])
}

// ErrBadFrame is returned (wrapped, with the reason) for bytes that are not a
// valid frame.
var ErrBadFrame = errors.New("bad event frame")

// Frame is one decoded frame; which fields are set depends on Type.
type Frame struct {
	Type byte
	// Trace is the W3C trace context of the span that sent this event
	// (FrameEvent and FrameData), zero when the event is not traced.
	Trace   tracectx.Context
	Kind    Kind
	Subject string
	Origin  siteid.ID
	Paths   [][]siteid.ID
	Mark    uint64
	// Sites is a list of site IDs whose meaning depends on Type: for
	// FrameData the destination sites the entry is for, for a queue's
	// FrameEvent the sites already tried.
	Sites   []siteid.ID
	Payload []byte
}

// AppendFrame appends f's encoding, length prefix included, to b.
func AppendFrame(b []byte, f *Frame) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, f.Type)
	switch f.Type {
	case FrameEvent, FrameData:
		if !f.Trace.IsZero() {
			b[start+4] |= frameTraced
			b = f.Trace.Append(b)
		}
		b = append(b, byte(f.Kind))
		b = appendBytes(b, []byte(f.Subject))
		b = append(b, f.Origin[:]...)
		if f.Type == FrameEvent {
			b = binary.AppendUvarint(b, uint64(len(f.Paths)))
			for _, p := range f.Paths {
				b = binary.AppendUvarint(b, uint64(len(p)))
				for _, id := range p {
					b = append(b, id[:]...)
				}
			}
		}
		b = binary.AppendUvarint(b, uint64(len(f.Sites)))
		for _, id := range f.Sites {
			b = append(b, id[:]...)
		}
		b = appendBytes(b, f.Payload)
	case FrameAck, FrameMark:
		b = binary.AppendUvarint(b, f.Mark)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// ReadFrame reads one frame. buf is reused for the body when large enough;
// the returned frame's Payload aliases it, so the caller must copy what it
// keeps before the next call.
func ReadFrame(r io.Reader, buf []byte) (Frame, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxFrameSize {
		return Frame{}, buf, fmt.Errorf("%w: length %d", ErrBadFrame, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			// The length came: the stream ended inside a frame, which is
			// not the clean end that io.EOF tells the caller.
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, buf, err
	}
	f, err := DecodeFrame(buf)
	return f, buf, err
}

// DecodeFrame decodes one frame body (without its length prefix).
func DecodeFrame(b []byte) (Frame, error) {
	d := fdec{b: b}
	f := Frame{Type: d.byte()}
	if t := f.Type &^ frameTraced; f.Type != t && (t == FrameEvent || t == FrameData) {
		f.Type = t
		if f.Trace = d.trace(); d.err == nil && !f.Trace.Valid() {
			d.fail("trace context with a zero trace or span ID")
		}
	}
	switch f.Type {
	case FrameEvent, FrameData:
		f.Kind = Kind(d.byte())
		if d.err == nil && f.Kind != Topic && f.Kind != Queue {
			d.fail("kind %d", f.Kind)
		}
		f.Subject = string(d.bytes(MaxSubjectLen))
		if d.err == nil && ValidateSubject(f.Subject) != nil {
			d.fail("subject %q", f.Subject)
		}
		f.Origin = d.id()
		if f.Type == FrameEvent {
			np := d.uvarint(MaxPaths)
			// Each path takes at least one byte: bound the allocation by
			// what is left.
			if d.err == nil && np > uint64(len(d.b)) {
				d.fail("%d paths in %d bytes", np, len(d.b))
			}
			if d.err == nil && np > 0 {
				f.Paths = make([][]siteid.ID, np)
			}
			for i := 0; d.err == nil && i < int(np); i++ {
				ns := d.uvarint(maxSegments)
				if d.err == nil && ns*16 > uint64(len(d.b)) {
					d.fail("truncated path")
				}
				if d.err != nil {
					break
				}
				p := make([]siteid.ID, ns)
				for j := range p {
					p[j] = d.id()
				}
				f.Paths[i] = p
			}
		}
		f.Sites = d.ids(MaxPaths)
		f.Payload = d.bytes(MaxPayload)
	case FrameAck, FrameMark:
		f.Mark = d.uvarint(^uint64(0))
	default:
		if d.err == nil {
			d.fail("unknown type %d", f.Type)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Frame{}, d.err
	}
	return f, nil
}

type fdec struct {
	b   []byte
	err error
}

func (d *fdec) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadFrame, fmt.Sprintf(format, args...))
	}
}

func (d *fdec) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *fdec) uvarint(limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	// A non-minimal varint is refused so that every frame has one encoding.
	if n <= 0 || n > 1 && d.b[n-1] == 0 {
		d.fail("bad varint")
		return 0
	}
	if v > limit {
		d.fail("value %d over limit %d", v, limit)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *fdec) bytes(limit int) []byte {
	n := d.uvarint(uint64(limit))
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("truncated")
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

// ids reads a count and that many site IDs; none gives nil.
func (d *fdec) ids(limit uint64) []siteid.ID {
	n := d.uvarint(limit)
	if d.err == nil && n*16 > uint64(len(d.b)) {
		d.fail("truncated site list")
	}
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]siteid.ID, n)
	for i := range out {
		out[i] = d.id()
	}
	return out
}

func (d *fdec) trace() tracectx.Context {
	if d.err == nil && len(d.b) < tracectx.ContextSize {
		d.fail("truncated trace context")
	}
	if d.err != nil {
		return tracectx.Context{}
	}
	c := tracectx.ReadContext(d.b)
	d.b = d.b[tracectx.ContextSize:]
	return c
}

func (d *fdec) id() siteid.ID {
	var id siteid.ID
	if d.err != nil {
		return id
	}
	if len(d.b) < 16 {
		d.fail("truncated site ID")
		return id
	}
	copy(id[:], d.b)
	d.b = d.b[16:]
	return id
}
