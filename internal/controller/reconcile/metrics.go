package reconcile

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's Prometheus series. Labels carry the target kind,
// not the target name, to keep cardinality independent of the fleet's size;
// per-target detail is in the recorded statuses.
type metrics struct {
	syncs        *prometheus.CounterVec   // kind, result
	syncSeconds  *prometheus.HistogramVec // kind
	ops          *prometheus.CounterVec   // kind, op, result
	failing      prometheus.Gauge
	sourceErrors prometheus.Counter
	statusErrors prometheus.Counter
}

// RegisterMetrics registers the engine's series on reg ahead of any engine,
// which takes them over when it is made: a replica that has not led yet, and
// so has made no engine, exports them too.
func RegisterMetrics(reg prometheus.Registerer) { newMetrics(reg) }

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_controller_target_syncs_total",
			Help: "Passes over a target, by target kind and result.",
		}, []string{"kind", "result"}),
		syncSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_controller_target_sync_duration_seconds",
			Help:    "Duration of one pass over a target.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 8),
		}, []string{"kind"}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_controller_object_operations_total",
			Help: "Object applies and deletes at targets, by target kind, operation and result.",
		}, []string{"kind", "op", "result"}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_controller_failing_targets",
			Help: "Targets whose last pass failed and that are waiting to retry.",
		}),
		sourceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_controller_source_errors_total",
			Help: "Failures to read the desired state.",
		}),
		statusErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_controller_status_errors_total",
			Help: "Failures to record a status; the status is recorded again on the next pass.",
		}),
	}
	if reg != nil {
		// A replica that loses and regains leadership builds a new engine on the
		// same registry; it takes over the series already there, so that
		// counters keep counting instead of the registration panicking.
		m.syncs = register(reg, m.syncs)
		m.syncSeconds = register(reg, m.syncSeconds)
		m.ops = register(reg, m.ops)
		m.failing = register(reg, m.failing)
		m.sourceErrors = register(reg, m.sourceErrors)
		m.statusErrors = register(reg, m.statusErrors)
	}
	return m
}

// register registers c, or returns the equal collector registered before.
// Any other registration error is a programmer error and panics.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
		return are.ExistingCollector.(C)
	}
	if err != nil {
		panic(err)
	}
	return c
}
