package vl3

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// MaxPacket is the largest IP packet a frame carries: the length field's
// limit, and an IPv4 packet's.
const MaxPacket = 1<<16 - 1

// ErrMalformed is returned (wrapped, with the reason) for a packet that is
// not a well-formed IPv4 packet. The frame around it was read whole, so the
// stream goes on: the packet is dropped and counted.
var ErrMalformed = errors.New("vl3: malformed packet")

// AppendFrame appends the frame of one IP packet to b: its length as two
// bytes, big-endian, then the packet. pkt must be at most MaxPacket bytes.
func AppendFrame(b, pkt []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(pkt)))
	return append(b, pkt...)
}

// FrameReader reads the frames of a packet stream. It allocates one
// MaxPacket buffer, whatever the peer sends.
type FrameReader struct {
	r   *bufio.Reader
	buf []byte
}

// NewFrameReader reads frames from r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10), buf: make([]byte, MaxPacket)}
}

// Next returns the next frame's packet, valid until the following call,
// and its destination. An error wrapping ErrMalformed is for this packet
// alone: call Next again. Any other error ends the stream; io.EOF is a
// clean end between frames.
func (f *FrameReader) Next() ([]byte, netip.Addr, error) {
	var l [2]byte
	if _, err := io.ReadFull(f.r, l[:1]); err != nil {
		return nil, netip.Addr{}, err
	}
	if _, err := io.ReadFull(f.r, l[1:]); err != nil {
		return nil, netip.Addr{}, io.ErrUnexpectedEOF
	}
	pkt := f.buf[:binary.BigEndian.Uint16(l[:])]
	if _, err := io.ReadFull(f.r, pkt); err != nil {
		return nil, netip.Addr{}, io.ErrUnexpectedEOF
	}
	_, dst, err := Addresses(pkt)
	return pkt, dst, err
}

// Addresses checks that pkt is one whole IPv4 packet and returns its source
// and destination.
func Addresses(pkt []byte) (src, dst netip.Addr, err error) {
	switch {
	case len(pkt) < 20:
		return src, dst, fmt.Errorf("%w: %d bytes, shorter than an IPv4 header", ErrMalformed, len(pkt))
	case pkt[0]>>4 != 4:
		return src, dst, fmt.Errorf("%w: IP version %d; the network carries IPv4", ErrMalformed, pkt[0]>>4)
	case int(pkt[0]&0xf)*4 < 20:
		return src, dst, fmt.Errorf("%w: IPv4 header length %d", ErrMalformed, int(pkt[0]&0xf)*4)
	case int(pkt[0]&0xf)*4 > len(pkt):
		return src, dst, fmt.Errorf("%w: IPv4 header of %d bytes in a packet of %d", ErrMalformed, int(pkt[0]&0xf)*4, len(pkt))
	case int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt):
		return src, dst, fmt.Errorf("%w: total length %d in a frame of %d", ErrMalformed, binary.BigEndian.Uint16(pkt[2:]), len(pkt))
	}
	return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), nil
}
