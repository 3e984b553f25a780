package link

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketOf is the socket under conn (through TLS and BufferedConn), for
// inputQueued; nil when there is none, as over net.Pipe.
func socketOf(conn net.Conn) syscall.RawConn {
	sc, ok := under[syscall.Conn](conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// inputQueued reports whether the kernel holds bytes that arrived on raw
// and were not read yet (SIOCINQ): then the peer was not silent, this
// process's read loop is behind.
func inputQueued(raw syscall.RawConn) bool {
	if raw == nil {
		return false
	}
	n := 0
	if err := raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return false
	}
	return n > 0
}
