package console

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSamplerRates(t *testing.T) {
	reg := prometheus.NewRegistry()
	req := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "req_total"}, []string{"address", "code"})
	backlog := prometheus.NewGauge(prometheus.GaugeOpts{Name: "backlog"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "other_total"})
	reg.MustRegister(req, backlog, other)
	s := NewSampler(reg, 3, Series{Key: "req", Metric: "req_total", By: []string{"address"}}, Series{Key: "backlog", Metric: "backlog"})

	t0 := time.Unix(1000, 0)
	if got := s.Rates(); len(got) != 0 {
		t.Fatalf("rates before samples: %v", got)
	}
	s.Sample(t0)
	req.WithLabelValues("a", "200").Add(10)
	req.WithLabelValues("a", "500").Add(10) // summed by address
	req.WithLabelValues("b", "200").Add(4)
	backlog.Set(7)
	other.Inc()
	s.Sample(t0.Add(2 * time.Second))
	req.WithLabelValues("a", "200").Add(4)
	s.Sample(t0.Add(4 * time.Second))
	s.Sample(t0.Add(6 * time.Second)) // pushes the first sample out

	r := s.Rates()
	want := map[string][]float64{"req/a": {2, 0}, "req/b": {0, 0}, "backlog": {0, 0}}
	for k, w := range want {
		got := r[k]
		if len(got) != len(w) {
			t.Fatalf("%s: %v, want %v", k, got, w)
		}
		for i := range w {
			if got[i].V != w[i] {
				t.Fatalf("%s: %v, want %v", k, got, w)
			}
		}
	}
	if got := r["req/a"][0].T; got != t0.Add(4*time.Second).UnixMilli() {
		t.Fatalf("first point at %d", got)
	}
	if len(r) != len(want) {
		t.Fatalf("rates %v: only the series asked for", r)
	}
	if l := s.Latest(); l["req/a"] != 24 || l["backlog"] != 7 {
		t.Fatalf("latest %v", l)
	}
}

// A series that appears between two samples counts from 0, and a counter
// that goes down (its process restarted) gives no negative rate.
func TestSamplerNewAndReset(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total"}, []string{"l"})
	reg.MustRegister(c)
	s := NewSampler(reg, 10, Series{Key: "c", Metric: "c_total", By: []string{"l"}})
	t0 := time.Unix(0, 0)
	s.Sample(t0)
	c.WithLabelValues("x").Add(6)
	s.Sample(t0.Add(3 * time.Second))
	c.Reset()
	c.WithLabelValues("x").Add(1)
	s.Sample(t0.Add(6 * time.Second))
	got := s.Rates()["c/x"]
	if len(got) != 2 || got[0].V != 2 || got[1].V != 0 {
		t.Fatalf("rates %v, want 2 then 0", got)
	}
}

// A series summed by two labels keys its values by both, in order.
func TestSamplerByTwoLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ev_total"}, []string{"kind", "address", "code"})
	reg.MustRegister(c)
	s := NewSampler(reg, 2, Series{Key: "ev", Metric: "ev_total", By: []string{"kind", "address"}})
	c.WithLabelValues("topic", "orders", "a").Add(2)
	c.WithLabelValues("topic", "orders", "b").Add(3)
	c.WithLabelValues("queue", "orders", "a").Add(1)
	s.Sample(time.Unix(0, 0))
	if l := s.Latest(); len(l) != 2 || l["ev/topic/orders"] != 5 || l["ev/queue/orders"] != 1 {
		t.Fatalf("latest %v, want ev/topic/orders 5 and ev/queue/orders 1", l)
	}
}
