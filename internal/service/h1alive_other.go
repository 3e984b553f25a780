//go:build !linux

package service

import "net"

// connAlive takes an idle connection for alive where the socket cannot be
// peeked at; a request that finds it dead is sent again when that is safe
// (h1Client.RoundTrip).
func connAlive(net.Conn) bool { return true }
