package benchclient

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestEvent: a benchmark event is a valid CloudEvent in JSON whose data is
// size bytes, and its publish time reads back from the JSON as sent.
func TestEvent(t *testing.T) {
	at := time.Unix(1_700_000_000, 123456789)
	for _, size := range []int{0, dataOverhead, 256, 4096} {
		ev := event("run-0-7", at, strings.Repeat("x", max(0, size-dataOverhead)))
		var e struct {
			SpecVersion, ID, Source, Type string
			Data                          json.RawMessage
		}
		if err := json.Unmarshal(ev, &e); err != nil || e.SpecVersion != "1.0" || e.ID != "run-0-7" || e.Type != EventType {
			t.Fatalf("size %d: %s: %+v %v", size, ev, e, err)
		}
		if want := max(size, dataOverhead); len(e.Data) != want || dataSize(ev) != want {
			t.Errorf("size %d: data of %d bytes, dataSize %d, want %d", size, len(e.Data), dataSize(ev), want)
		}
		if got, ok := published(ev); !ok || !got.Equal(at) {
			t.Errorf("size %d: published %v %v, want %v", size, got, ok, at)
		}
	}
	if _, ok := published([]byte(`{"data":{"t":x}`)); ok {
		t.Error("published read a time out of a broken event")
	}
}

func TestStats(t *testing.T) {
	s := Stats{Msgs: 1000, Elapsed: 2 * time.Second, Size: 1 << 20}
	for i := 100; i >= 1; i-- {
		s.Latency = append(s.Latency, time.Duration(i)*time.Millisecond)
	}
	if s.Rate() != 500 || s.MiBRate() != 500 {
		t.Errorf("rate %v, MiB/s %v; want 500 and 500", s.Rate(), s.MiBRate())
	}
	if p := s.Percentile(0.5); p != 51*time.Millisecond {
		t.Errorf("p50 %v", p)
	}
	if p := s.Percentile(1); p != 100*time.Millisecond {
		t.Errorf("max %v", p)
	}
	const want = "pub msgs=1000 refused=0 missing=0 secs=2.000 msgs/s=500 MiB/s=500.00 p50=51ms p90=91ms p99=100ms max=100ms"
	if got := s.Line("pub"); got != want {
		t.Errorf("Line:\n got %s\nwant %s", got, want)
	}
}
