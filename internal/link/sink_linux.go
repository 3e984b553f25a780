package link

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// directSinks: the read loop may write to a stream's sink (sink.go).
const directSinks = true

// writevNow writes v to raw's socket with one writev that does not wait:
// what a full socket buffer does not take is not written (0, EAGAIN).
func writevNow(raw syscall.RawConn, v [][]byte) (n int, err error) {
	cerr := raw.Write(func(fd uintptr) bool {
		for {
			n, err = unix.Writev(int(fd), v)
			if err != unix.EINTR {
				return true // done, also on EAGAIN: never wait
			}
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	return max(n, 0), err
}
