// Package controller assembles the weft controller: the store, the REST API, the
// renderers and the sync engine, which runs only on the replica that leads.
// Nothing imports it but the command line.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/utils/clock"

	"weft.dev/weft/internal/controller/api"
	"weft.dev/weft/internal/controller/reconcile"
	_ "weft.dev/weft/internal/controller/render/externaldns" // registers the externaldns renderer
	_ "weft.dev/weft/internal/controller/render/istio"       // registers the istio renderer
	_ "weft.dev/weft/internal/controller/render/weft"        // registers the weft renderer
	"weft.dev/weft/internal/controller/store"
	"weft.dev/weft/internal/datadir"

	"weft.dev/weft/internal/observe/tracing"
)

// Options configure Run.
type Options struct {
	Data   string // directory for admin.token and the default SQLite database
	Listen string // API address; default 127.0.0.1:7480
	DB     string // sqlite://PATH or postgres://...; default sqlite://DATA/controller.db
	Logger *slog.Logger
	// Ready, if set, receives the API's bound address once it serves.
	Ready func(addr string)
	// Engine options; Workers, backoff and resync default in the engine.
	Engine reconcile.Options
	// LeaderPoll is how often a standby replica tries to lead and a leader
	// checks for writes made through other replicas; default 2s.
	LeaderPoll time.Duration
	// Clock times leadership, the generation poll and, unless Engine.Clock
	// is set, the engine's retries; default the real clock.
	Clock clock.WithTicker
	// Tracing is where the spans of API calls and syncs go; nil: none.
	Tracing *tracing.Provider
}

// AdminTokenFile is the file in the data directory that holds the admin token.
const AdminTokenFile = "admin.token"

// AddrFile is the file in the data directory where the command line writes the
// API's bound address once it serves.
const AddrFile = "api.addr"

// Run serves the API until ctx ends, syncing targets whenever this replica leads.
func Run(ctx context.Context, o Options) error {
	if o.Data == "" {
		return errors.New("controller: a data directory is required")
	}
	// Two processes on one directory would both lead a SQLite store, and even
	// beside PostgreSQL they would overwrite each other's admin.token and
	// api.addr: every replica needs a directory of its own.
	lock, err := datadir.Acquire(o.Data)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:7480"
	}
	if o.DB == "" {
		o.DB = "sqlite://" + filepath.Join(o.Data, "controller.db")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LeaderPoll == 0 {
		o.LeaderPoll = 2 * time.Second
	}
	if o.Engine.Logger == nil {
		o.Engine.Logger = o.Logger
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Engine.Tracer == nil {
		o.Engine.Tracer = o.Tracing.Tracer("controller")
	}
	if o.Engine.Clock == nil {
		o.Engine.Clock = o.Clock
	}
	st, err := store.Open(ctx, o.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := ensureAdminToken(ctx, st, o.Data, o.Logger); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	leader := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "weft_controller_leader",
		Help: "1 while this replica leads and runs the sync engine, else 0.",
	})
	reg.MustRegister(leader)
	if o.Engine.Registerer == nil {
		o.Engine.Registerer = reg
	}
	reconcile.RegisterMetrics(o.Engine.Registerer)
	// API writes through this replica trigger the engine of the current
	// leadership term directly; there is none while this replica stands by,
	// and the next term's first pass reads the store anyway.
	var (
		engMu sync.Mutex
		cur   *reconcile.Engine
	)
	trigger := func() {
		engMu.Lock()
		defer engMu.Unlock()
		if cur != nil {
			cur.Trigger()
		}
	}
	swap := func(e *reconcile.Engine) {
		engMu.Lock()
		defer engMu.Unlock()
		cur = e
	}
	mux := http.NewServeMux()
	// Unauthenticated, as Prometheus scrapes: the series carry counts and
	// target kinds, never names or credentials.
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	apiHandler := api.New(st, trigger, o.Logger)
	mux.Handle("/", apiHandler)
	srv := &http.Server{Handler: tracing.Handler(o.Tracing.Tracer("controller"), mux), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	o.Logger.Info("controller API serving", "addr", ln.Addr().String(), "db", redact(o.DB))
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	// Both goroutines are waited for: the engine must not outlive the store,
	// nor the data directory's lock.
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	registerConsole(mux, apiHandler, st, rctx.Done(), o.Logger)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- lead(rctx, st, swap, leader, o) }()
	var errs []error
	select {
	case <-ctx.Done():
	case err := <-errc: // serving or leading failed: stop the other
		errs = append(errs, err)
	}
	stop()
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	for len(errs) < cap(errc) {
		errs = append(errs, <-errc)
	}
	for i, err := range errs {
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
			errs[i] = nil
		}
	}
	return errors.Join(errs...)
}

// lead runs a sync engine whenever this replica holds leadership, a new one
// for each term: an Engine runs once, and keeps nothing that matters across
// terms. swap is told of each term's engine, nil between terms; gauge
// follows leadership.
func lead(ctx context.Context, st *store.Store, swap func(*reconcile.Engine), gauge prometheus.Gauge, o Options) error {
	for ctx.Err() == nil {
		lctx, release, err := st.Lead(ctx, o.Clock, o.LeaderPoll)
		if err != nil {
			return err
		}
		o.Logger.Info("controller leads; syncing")
		gauge.Set(1)
		err = term(lctx, st.Generation, func() *reconcile.Engine {
			return reconcile.New(Source{st}, StatusSink{st}, o.Engine)
		}, swap, o)
		release()
		gauge.Set(0)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("sync engine: %w", err)
		}
		if ctx.Err() == nil {
			o.Logger.Warn("controller lost leadership")
		}
	}
	return nil
}

// term runs an engine made by newEngine until lctx, the leadership, ends.
// generation reads the store's generation.
func term(lctx context.Context, generation func(context.Context) (int64, error), newEngine func() *reconcile.Engine, swap func(*reconcile.Engine), o Options) error {
	// The generation is read before the engine's first pass reads the store,
	// so that a write by another replica in between is noticed: it is not in
	// that pass, and only the generation can tell of it. If the read fails,
	// the first one that succeeds triggers a pass.
	gen, err := generation(lctx)
	if err != nil {
		o.Logger.Warn("reading the store's generation", "err", err)
		gen = -1
	}
	eng := newEngine()
	swap(eng)
	defer swap(nil)
	done := make(chan error, 1)
	go func() { done <- eng.Run(lctx) }()
	watchGeneration(lctx, generation, eng, gen, o)
	return <-done
}

// watchGeneration triggers the engine whenever the store's generation moves
// from last, as it does when another replica's API writes, until ctx ends.
// Writes through this replica trigger the engine directly.
func watchGeneration(ctx context.Context, generation func(context.Context) (int64, error), eng *reconcile.Engine, last int64, o Options) {
	t := o.Clock.NewTicker(o.LeaderPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		g, err := generation(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			o.Logger.Warn("reading the store's generation", "err", err)
		case err == nil && g != last:
			eng.Trigger()
			last = g
		}
	}
}

// ensureAdminToken creates the first admin token and writes it to
// DATA/admin.token (mode 0600) if the store has none.
func ensureAdminToken(ctx context.Context, st *store.Store, dir string, log *slog.Logger) error {
	ok, err := st.HasAdmin(ctx)
	if err != nil || ok {
		return err
	}
	tok := api.NewToken()
	path := filepath.Join(dir, AdminTokenFile)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	if err := st.AddToken(ctx, tok, store.RoleAdmin); err != nil {
		return err
	}
	log.Info("admin token written", "path", path)
	return nil
}

// redact hides a database URL's password in logs.
func redact(dsn string) string {
	if i, j := indexOf(dsn, "://"), indexOf(dsn, "@"); i >= 0 && j > i {
		return dsn[:i+3] + "…" + dsn[j:]
	}
	return dsn
}

func indexOf(s, sub string) int { return strings.Index(s, sub) }
