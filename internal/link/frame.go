package link

import "encoding/binary"

// Frame header layout (big endian), see spec.md:
//
//	0      1      2      4          8          12
//	| ver  | type | flags| stream ID| length   | payload...
const (
	protoVersion = 0
	hdrSize      = 12
)

type frameType uint8

const (
	typeData frameType = iota
	typeWindow
	typeOpen
	typeConfirm
	typeReject
	typeFin
	typeRst
	typePing
	typePong
	typeControl
	typeGoAway
	typeProbe
	numTypes
)

var typeNames = [numTypes]string{"DATA", "WINDOW", "OPEN", "CONFIRM", "REJECT", "FIN", "RST", "PING", "PONG", "CONTROL", "GOAWAY", "PROBE"}

func (t frameType) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return "UNKNOWN"
}

// Limits. maxPayload and defaultWindow were chosen by measurement
// (BENCH.md): 256 KiB frames were no faster than 64 KiB ones, and smaller
// frames let other streams interleave sooner.
const (
	maxPayload       = 64 << 10
	MaxHeaderLen     = 64 << 10 // OPEN header bytes
	MaxControlLen    = 1 << 20  // one control message
	MaxRejectMsgLen  = 1024     // longer reject messages are truncated
	openPrefix       = 4        // initial window in OPEN and CONFIRM
	defaultWindow    = 4 << 20
	minWindow        = 64 << 10
	maxWindow        = 1 << 30
	defaultStreams   = 65536
	defaultBacklog   = 256
	defaultHeartbeat = 500 * 1e6 // ns
)

// MaxData is the largest payload of one DATA frame: ReadFrom hands its
// reader buffers of this size, each becoming one frame when credit allows.
const MaxData = maxPayload

// lenBounds gives the allowed payload length range per frame type, and
// whether the frame belongs to a stream (ID != 0) or the session (ID == 0).
var lenBounds = [numTypes]struct {
	min, max uint32
	stream   bool
}{
	typeData:    {1, maxPayload, true},
	typeWindow:  {4, 4, true},
	typeOpen:    {openPrefix, openPrefix + MaxHeaderLen, true},
	typeConfirm: {openPrefix, openPrefix, true},
	typeReject:  {2, 2 + MaxRejectMsgLen, true},
	typeFin:     {0, 0, true},
	typeRst:     {2, 2, true},
	typePing:    {8, 8, false},
	typePong:    {8, 8, false},
	typeControl: {0, MaxControlLen, false},
	typeGoAway:  {4, 4, false},
	typeProbe:   {8, 8, false},
}

func putHeader(b *[hdrSize]byte, t frameType, id uint32, length int) {
	b[0] = protoVersion
	b[1] = byte(t)
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint32(b[4:], id)
	binary.BigEndian.PutUint32(b[8:], uint32(length))
}

// checkHeader validates a received frame header on its own; stream state is
// checked by the read loop.
func checkHeader(b []byte) (t frameType, id, length uint32, err error) {
	if b[0] != protoVersion {
		return 0, 0, 0, protoErr("unsupported version %d", b[0])
	}
	t = frameType(b[1])
	if t >= numTypes {
		return 0, 0, 0, protoErr("unknown frame type %d", b[1])
	}
	if b[2] != 0 || b[3] != 0 {
		return 0, 0, 0, protoErr("%v: reserved flags set", t)
	}
	id = binary.BigEndian.Uint32(b[4:])
	length = binary.BigEndian.Uint32(b[8:])
	lb := lenBounds[t]
	if length < lb.min || length > lb.max {
		return 0, 0, 0, protoErr("%v: bad length %d", t, length)
	}
	if lb.stream != (id != 0) {
		return 0, 0, 0, protoErr("%v: bad stream ID %d", t, id)
	}
	return t, id, length, nil
}
