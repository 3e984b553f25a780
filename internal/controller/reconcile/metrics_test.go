package reconcile

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsReregister: the controller builds a new engine on the same
// registry each time a replica regains leadership; it must take over the
// series, not panic, and counts must carry on.
func TestMetricsReregister(t *testing.T) {
	reg := prometheus.NewRegistry()
	first := newMetrics(reg)
	first.sourceErrors.Inc()
	second := newMetrics(reg)
	second.sourceErrors.Inc()
	if got := testutil.ToFloat64(second.sourceErrors); got != 2 {
		t.Fatalf("source errors after two engines = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "weft_controller_source_errors_total"); err != nil || n != 1 {
		t.Fatalf("gathered %d series (%v), want 1", n, err)
	}
}
