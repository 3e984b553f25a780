package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/observe/tracing"
)

// traceFlags are the tracing flags of the long-running commands. Where
// spans go is the standard OTEL_EXPORTER_OTLP_* variables' business.
type traceFlags struct{ sample float64 }

func (t *traceFlags) add(cmd *cobra.Command) {
	cmd.Flags().Float64Var(&t.sample, "trace-sample", 0, "share of new traces to record and export over OTLP (0 to 1; 0: tracing off). "+
		"Traces a client started are recorded when the client sampled them. Export is set by OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_PROTOCOL (grpc or http/protobuf)")
}

// start starts the tracer provider the flags ask for: nil when off.
func (t *traceFlags) start(ctx context.Context, service string, log *slog.Logger) (*tracing.Provider, error) {
	return tracing.Start(ctx, t.sample, service, log)
}

// stopTimeout bounds the export of the last spans at exit, so that an
// unreachable collector does not hold the process.
const stopTimeout = 5 * time.Second

// stop exports the spans still buffered.
func (t *traceFlags) stop(p *tracing.Provider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil && log != nil {
		log.Warn("the last spans were not exported; check OTEL_EXPORTER_OTLP_ENDPOINT", "err", err)
	}
}
