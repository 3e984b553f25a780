package seal

import "testing"

func TestWindow(t *testing.T) {
	var w window
	steps := []struct {
		n    uint64
		want bool
	}{
		{0, true}, {0, false}, // replay
		{5, true}, {3, true}, {3, false}, {5, false}, // out of order, then replays
		{1000, true}, {6, true}, {999, true}, // still inside the window
		{10_000, true}, {1000, false}, // slid out: refused as too old
		{10_000 - windowBits + 65, true}, {10_000 - windowBits + 64, false}, // the window's edge
		{10_063, true}, {10_064, true}, {10_001, true}, {10_000, false}, // across a word boundary
		{1 << 40, true}, {1<<40 - 1, true}, {1<<40 - 1, false}, {10_064, false},
	}
	for i, s := range steps {
		if got := w.mark(s.n); got != s.want {
			t.Fatalf("step %d: mark(%d) = %v, want %v", i, s.n, got, s.want)
		}
	}
}

// Every counter is accepted exactly once, whatever the order inside the
// window.
func TestWindowEachOnce(t *testing.T) {
	var w window
	for base := uint64(0); base < 20_000; base += 500 {
		for i := uint64(500); i > 0; i-- { // descending within each batch
			if !w.mark(base + i - 1) {
				t.Fatalf("counter %d refused on first sight", base+i-1)
			}
		}
		for i := uint64(0); i < 500; i++ {
			if w.mark(base + i) {
				t.Fatalf("counter %d accepted twice", base+i)
			}
		}
	}
}
