package service

import (
	"net"

	"weft.dev/weft/internal/link"
)

// Stream is a stream whose path ends at this site, handed to ServeStream or
// ServeHTTPStream: a *link.Stream, or the same sealed end to end
// (*seal.Conn, whose Peer is the authenticated ingress site).
type Stream interface {
	net.Conn
	Confirm() error
	Reject(code uint16, msg string) error
	Reset(code uint16) error
}

var _ Stream = (*link.Stream)(nil)
