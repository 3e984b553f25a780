package service

import (
	"net"
	"syscall"
)

// connAlive reports whether an idle connection may take a request: the
// target has neither closed it nor sent anything unasked. One
// non-blocking peek at the socket, since no goroutine reads an idle
// connection as http.Transport's read loop does.
func connAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN
		return true
	})
	return err == nil && alive
}
