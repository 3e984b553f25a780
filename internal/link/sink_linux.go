package link

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// directSinks: the read loop may write to a stream's sink (sink.go).
const directSinks = true

// writev writes v to raw's socket with one writev that does not wait:
// what a full socket buffer does not take is not written (0, EAGAIN).
func (w *sinkWriter) writev(raw syscall.RawConn, v [][]byte) (n int, err error) {
	if w.fn == nil {
		w.fn = w.write
	}
	w.v = v
	cerr := raw.Write(w.fn)
	n, err = w.n, w.err
	w.v, w.n, w.err = nil, 0, nil
	if cerr != nil {
		return 0, cerr
	}
	return max(n, 0), err
}

func (w *sinkWriter) write(fd uintptr) bool {
	for {
		w.n, w.err = unix.Writev(int(fd), w.v)
		if w.err != unix.EINTR {
			return true // done, also on EAGAIN: never wait
		}
	}
}
