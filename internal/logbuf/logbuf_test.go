package logbuf

import (
	"strings"
	"sync"
	"testing"
)

func TestKeepsEverythingByDefault(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("line\n"))
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "line\n"); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
}

func TestMaxKeepsTheTail(t *testing.T) {
	b := Buffer{Max: 100}
	for i := range 1000 {
		b.Write([]byte{byte('a' + i%26)})
	}
	b.Write([]byte("END"))
	s := b.String()
	if len(s) > 100 || !strings.HasSuffix(s, "END") {
		t.Fatalf("kept %d bytes ending %q", len(s), s[max(0, len(s)-5):])
	}
}
