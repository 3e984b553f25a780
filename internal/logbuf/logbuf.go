// Package logbuf is a buffer that processes and goroutines write their logs
// into while a test or a harness reads them, to assert on them or to explain
// a failure.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer is safe for concurrent Write and String. The zero value keeps
// everything; with Max set it keeps about the last Max bytes, since the tail
// is what explains a failure however chatty the writer is.
type Buffer struct {
	Max int

	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Max > 0 && b.b.Len()+len(p) > b.Max {
		keep := max(b.Max/4, b.Max-len(p))
		tail := append([]byte(nil), b.b.Bytes()[b.b.Len()-min(keep, b.b.Len()):]...)
		b.b.Reset()
		b.b.Write(tail)
	}
	return b.b.Write(p)
}

// String returns what the buffer holds.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
