//go:build !linux

package link

import "syscall"

// directSinks is off where writevNow has no non-blocking writev.
const directSinks = false

// writev is never called off Linux.
func (*sinkWriter) writev(syscall.RawConn, [][]byte) (int, error) { return 0, syscall.EAGAIN }
