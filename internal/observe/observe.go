// Package observe holds weft's logging and metrics: structured slog loggers and the
// Prometheus collectors every site exports on its admin address.
package observe

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewLogger returns a logger writing text or JSON ("json") records at level
// ("debug", "info", "warn", "error"). Lines logged with a context carry
// its WithLogAttrs attributes and its span's trace ID.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(contextHandler{slog.NewJSONHandler(w, opts)}), nil
	case "text", "":
		return slog.New(contextHandler{slog.NewTextHandler(w, opts)}), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", format)
}

// Metrics are the collectors of one site. Each site has its own registry so that
// several sites can live in one process (weft demo, tests).
type Metrics struct {
	Registry *prometheus.Registry

	StreamsOpened *prometheus.CounterVec // address
	StreamsActive *prometheus.GaugeVec   // address
	StreamsFailed *prometheus.CounterVec // address, reason
	AddressBytes  *prometheus.CounterVec // address, direction
	// HTTPRequests and HTTPDuration count the requests of http listeners
	// by address, status code and method (curried by address per listener).
	HTTPRequests   *prometheus.CounterVec
	HTTPDuration   *prometheus.HistogramVec
	RoutingSites   prometheus.Gauge
	RecordsFlooded prometheus.Counter
	// RecordsRejected counts site records dropped on arrival, by reason
	// (malformed, unsigned, key-mismatch, bad-signature, stale, revoked).
	RecordsRejected *prometheus.CounterVec
	// LimitRefusals counts input refused because it would break a limit,
	// by the limit's name: a site refuses what it cannot hold rather than
	// fail on it later.
	LimitRefusals *prometheus.CounterVec

	// Hedges counts the backup copies of hedged HTTP requests sent, by
	// address; Overflows counts requests and connections sent to a
	// costlier site than the cheapest serving the address, by address.
	Hedges    *prometheus.CounterVec
	Overflows *prometheus.CounterVec
}

// NewMetrics registers a site's collectors in a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		StreamsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_streams_opened_total", Help: "Client connections carried to an address.",
		}, []string{"address"}),
		StreamsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_streams_active", Help: "Client connections open now, by address.",
		}, []string{"address"}),
		StreamsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_streams_failed_total", Help: "Client connections that reached no connector.",
		}, []string{"address", "reason"}),
		AddressBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_address_bytes_total", Help: "Bytes carried for an address at this site's listeners: a TCP connection's, an HTTP request's and answer's bodies; out is client to service.",
		}, []string{"address", "direction"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_http_requests_total", Help: "Requests answered by http listeners.",
		}, []string{"address", "code", "method"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_http_request_duration_seconds", Help: "Time from a request's arrival at an http listener to its answer's headers.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"address", "code", "method"}),
		Hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_http_hedges_total", Help: "Backup copies of hedged requests sent by http listeners.",
		}, []string{"address"}),
		Overflows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_balance_overflows_total", Help: "Requests and connections sent to a costlier site than the cheapest serving the address, because the cheaper ones were at their limit, ejected or already tried.",
		}, []string{"address"}),
		RoutingSites: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_routing_sites", Help: "Sites reachable in the network, this one included.",
		}),
		RecordsFlooded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_routing_records_sent_total", Help: "Site records sent to neighbours.",
		}),
		RecordsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_records_rejected_total", Help: "Site records dropped on arrival, by reason: malformed, unsigned, key-mismatch and bad-signature (forged or altered), stale (older than the one held: replayed or late), revoked.",
		}, []string{"reason"}),
		LimitRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_limit_refusals_total", Help: "Requests and changes refused because they would break a limit, by limit.",
		}, []string{"limit"}),
	}
	m.Registry.MustRegister(m.StreamsOpened, m.StreamsActive,
		m.StreamsFailed, m.AddressBytes, m.HTTPRequests, m.HTTPDuration, m.Hedges, m.Overflows, m.RoutingSites, m.RecordsFlooded, m.RecordsRejected, m.LimitRefusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
