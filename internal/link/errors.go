package link

import (
	"errors"
	"fmt"
)

var (
	// ErrSessionClosed is returned by Accept, Open and stream I/O once the
	// session is closed, by either side. Session.Err tells the cause.
	ErrSessionClosed = errors.New("link: session closed")

	// ErrPeerDead is the session error when no frame arrived for
	// Config.DeadAfter. Shorter silences, judged against the limits learnt
	// from the peer's PINGs and round trips, only make the session suspect
	// (Session.Suspect).
	ErrPeerDead = errors.New("link: peer dead: no frame received within DeadAfter")

	// ErrPeerUnresponsive is returned by Open when the peer answered
	// neither the OPEN nor the probe it set off, and nothing else arrived
	// meanwhile: the session lives on (its established streams may outlast
	// the peer's stall), but the caller should take the stream elsewhere.
	// An Open under OnStall is not failed so; its caller is told instead.
	ErrPeerUnresponsive = errors.New("link: peer unresponsive")

	// ErrConnLost matches (errors.Is) the session error when the
	// connection under the session failed or ended without a GOAWAY from
	// the peer: a read or write error, or EOF. A peer that was killed or cut
	// off ends its links this way; Close on either side does not.
	ErrConnLost = errors.New("link: connection lost")

	// ErrProtocol is the session error (wrapped with the reason) when the
	// peer broke the wire protocol; the session is closed at once.
	ErrProtocol = errors.New("link: protocol violation")

	// ErrTooManyStreams is returned by Open when the session already holds
	// Config.MaxStreams streams.
	ErrTooManyStreams = errors.New("link: too many streams")

	// ErrStreamIDsExhausted is returned by Open once this side has used all
	// of its 2^31 stream IDs; the caller must start a new session.
	ErrStreamIDsExhausted = errors.New("link: stream IDs exhausted")

	// ErrTooLarge is returned when an OPEN header, a control message or a
	// reject message exceeds its limit (see spec.md).
	ErrTooLarge = errors.New("link: message too large")

	// ErrStreamState is returned by Confirm and Reject on a stream that is
	// not an accepted, still unconfirmed stream.
	ErrStreamState = errors.New("link: stream not in a state that allows this")
)

// RejectError is returned by Session.Open when the acceptor refused the
// stream with Stream.Reject.
type RejectError struct {
	Code    uint16
	Message string
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("link: stream rejected (code %d): %s", e.Code, e.Message)
}

// ResetError is returned by stream I/O after the stream was aborted with
// RST, by the peer (Remote) or locally.
type ResetError struct {
	Code   uint16
	Remote bool
}

func (e *ResetError) Error() string {
	if e.Remote {
		return fmt.Sprintf("link: stream reset by peer (code %d)", e.Code)
	}
	return fmt.Sprintf("link: stream reset locally (code %d)", e.Code)
}

// Reject and reset codes at or above CodeReserved are used by the link layer
// itself; applications use codes below it.
const (
	CodeReserved uint16 = 0xff00
	// CodeBacklog rejects an OPEN because the accept queue is full.
	CodeBacklog uint16 = 0xff01
	// CodeStreamLimit rejects an OPEN because the session holds MaxStreams.
	CodeStreamLimit uint16 = 0xff02
	// CodeClosed resets a stream whose reader closed it while the peer
	// still sends (TCP's RST on data after close).
	CodeClosed uint16 = 0xff03
	// CodeCanceled resets a stream whose Open was canceled by its context.
	CodeCanceled uint16 = 0xff04
)

// GOAWAY codes.
const (
	goAwayNormal   uint32 = 0
	goAwayProtocol uint32 = 1
	goAwayInternal uint32 = 2
)

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// connLost is a session error that also matches ErrConnLost, keeping the
// wrapped error's text.
type connLost struct{ error }

func (e connLost) Unwrap() error        { return e.error }
func (e connLost) Is(target error) bool { return target == ErrConnLost }
