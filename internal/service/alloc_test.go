//go:build !race

// The race detector makes sync.Pool drop what it is given, and so
// allocate: these bounds hold only without it.

package service

import (
	"net/http"
	"testing"
)

// The copy buffers of answers go back to their pool without an allocation
// (a *[]byte made per Put was two allocations per request).
func TestCopyBuffersWithoutAllocation(t *testing.T) {
	proxyBuffers.put(proxyBuffers.get())
	if n := testing.AllocsPerRun(100, func() { proxyBuffers.put(proxyBuffers.get()) }); n != 0 {
		t.Errorf("%v allocations per buffer taken and given back, want 0", n)
	}
}

// A new traceparent is one string and its one-element slice.
func TestNewTraceparentAllocations(t *testing.T) {
	h := http.Header{}
	if n := testing.AllocsPerRun(100, func() {
		delete(h, "Traceparent")
		ensureTraceparent(h)
	}); n > 2 {
		t.Errorf("%v allocations per traceparent made, want at most 2", n)
	}
}
