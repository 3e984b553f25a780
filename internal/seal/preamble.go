package seal

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Preamble kinds: the first byte of forward.Header.Seal.
const (
	kindInit   = 1 // a handshake's first message; the stream is counter 0
	kindResume = 2 // a stream of an existing session
)

const resumeLen = 1 + 4 + 8 + checkLen

// ErrPreamble is returned (wrapped) for a seal preamble that does not
// decode.
var ErrPreamble = errors.New("seal: bad preamble")

// preamble is the decoded forward.Header.Seal.
type preamble struct {
	kind    byte
	msg1    []byte // kindInit
	index   uint32 // kindResume: the session, as the initiator named it
	counter uint64 // kindResume: the stream, > 0
	check   [checkLen]byte
}

func (p *preamble) marshal() []byte {
	if p.kind == kindInit {
		return append([]byte{kindInit}, p.msg1...)
	}
	b := make([]byte, 0, resumeLen)
	b = append(b, kindResume)
	b = binary.BigEndian.AppendUint32(b, p.index)
	b = binary.BigEndian.AppendUint64(b, p.counter)
	return append(b, p.check[:]...)
}

func parsePreamble(b []byte) (preamble, error) {
	var p preamble
	if len(b) == 0 {
		return p, fmt.Errorf("%w: none; every service stream must be sealed end to end (is the ingress site older than this one?)", ErrPreamble)
	}
	p.kind = b[0]
	switch {
	case p.kind == kindInit && len(b) == 1+msg1Len:
		p.msg1 = b[1:]
	case p.kind == kindResume && len(b) == resumeLen:
		p.index = binary.BigEndian.Uint32(b[1:])
		p.counter = binary.BigEndian.Uint64(b[5:])
		copy(p.check[:], b[13:])
		if p.counter == 0 {
			return preamble{}, fmt.Errorf("%w: stream counter 0 is the handshake's", ErrPreamble)
		}
	default:
		return preamble{}, fmt.Errorf("%w: kind %d of %d bytes", ErrPreamble, p.kind, len(b))
	}
	return p, nil
}
