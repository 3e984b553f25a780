package labelcap

import (
	"fmt"
	"sync"
	"testing"
)

func TestFoldsPastTheCap(t *testing.T) {
	s := New(2)
	for _, c := range []struct{ name, want string }{
		{"orders", "orders"},
		{"billing", "billing"},
		{"spam-1", Other},
		{"orders", "orders"}, // held names keep their value
		{"spam-2", Other},
		{"billing", "billing"},
	} {
		if got := s.Value(c.name); got != c.want {
			t.Errorf("Value(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}
}

// TestConcurrentAdmitsNoMoreThanMax checks that racing first uses of new
// names cannot push the set past its cap.
func TestConcurrentAdmitsNoMoreThanMax(t *testing.T) {
	s := New(10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				s.Value(fmt.Sprintf("t%d-%d", g, i))
			}
		}()
	}
	wg.Wait()
	if s.Len() != 10 {
		t.Fatalf("Len = %d after 800 distinct names, want the cap 10", s.Len())
	}
}
