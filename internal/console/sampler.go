package console

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Series is one Prometheus counter or gauge the Sampler keeps, summed by
// one label.
type Series struct {
	// Key prefixes the series' keys in snapshots: Key/VALUE-OF-BY[0]/...
	Key    string
	Metric string
	// By are the labels the values are summed by, in key order; none sums
	// them all (the key is then Key alone).
	By []string
}

// Point is one value at one time (Unix milliseconds).
type Point struct {
	T int64   `json:"t"`
	V float64 `json:"v"`
}

// sample is every series' value at one time, by key.
type sample struct {
	at time.Time
	v  map[string]float64
}

// Sampler keeps the last samples of a few of a host's own metrics, so that
// the console can draw rates over the last minutes with no Prometheus
// server. Safe for concurrent use.
type Sampler struct {
	g      prometheus.Gatherer
	series map[string]Series // by metric name
	keep   int

	mu   sync.Mutex // guards ring
	ring []sample   // oldest first, at most keep
}

// NewSampler samples series from g and keeps the last keep samples.
func NewSampler(g prometheus.Gatherer, keep int, series ...Series) *Sampler {
	s := &Sampler{g: g, keep: max(keep, 2), series: map[string]Series{}}
	for _, x := range series {
		s.series[x.Metric] = x
	}
	return s
}

// Run samples every interval until ctx ends.
func (s *Sampler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.Sample(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample takes one sample at now. A gather that fails in part keeps what
// it got: one broken collector must not blank the console.
func (s *Sampler) Sample(now time.Time) {
	mfs, _ := s.g.Gather()
	v := map[string]float64{}
	for _, mf := range mfs {
		x, ok := s.series[mf.GetName()]
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := x.Key
			for _, by := range x.By {
				key += "/" + labelValue(m, by)
			}
			v[key] += metricValue(m)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) == s.keep {
		s.ring = append(s.ring[:0], s.ring[1:]...)
	}
	s.ring = append(s.ring, sample{at: now, v: v})
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// Rates returns, per key, the per-second rate between each two samples
// in a row, oldest first. A key missing from the earlier sample counts
// from 0 there (a counter starts at 0 when its label first appears); a
// counter that went down (a restart) gives 0 rather than a negative rate.
func (s *Sampler) Rates() map[string][]Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]Point{}
	for i := 1; i < len(s.ring); i++ {
		prev, cur := s.ring[i-1], s.ring[i]
		dt := cur.at.Sub(prev.at).Seconds()
		if dt <= 0 {
			continue
		}
		for k, v := range cur.v {
			out[k] = append(out[k], Point{T: cur.at.UnixMilli(), V: max(0, (v-prev.v[k])/dt)})
		}
	}
	return out
}

// Latest returns the newest sample's values by key; nil before the first
// sample.
func (s *Sampler) Latest() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) == 0 {
		return nil
	}
	return maps.Clone(s.ring[len(s.ring)-1].v)
}
