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

	"weft.dev/weft/internal/controller/api"
	"weft.dev/weft/internal/controller/reconcile"
	_ "weft.dev/weft/internal/controller/render/externaldns" // registers the externaldns renderer
	_ "weft.dev/weft/internal/controller/render/istio"       // registers the istio renderer
	_ "weft.dev/weft/internal/controller/render/weft"        // registers the weft renderer
	"weft.dev/weft/internal/controller/store"
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
	if err := os.MkdirAll(o.Data, 0o700); err != nil {
		return err
	}
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
	eng := reconcile.New(Source{st}, StatusSink{st}, o.Engine)
	// trigger goes through a variable because lead replaces the engine after
	// a lost leadership, and API writes must wake the running one.
	var (
		engMu sync.Mutex
		cur   = eng
	)
	trigger := func() {
		engMu.Lock()
		defer engMu.Unlock()
		cur.Trigger()
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
	mux.Handle("/", api.New(st, trigger, o.Logger))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	o.Logger.Info("controller API serving", "addr", ln.Addr().String(), "db", redact(o.DB))
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- lead(ctx, st, eng, swap, leader, o) }()

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		err = <-errc // the other goroutine
	} else {
		<-errc
	}
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// lead runs the engine whenever this replica holds leadership. An engine run
// that ends with leadership lost is started afresh on the next win: the engine
// keeps nothing that matters across runs.
// swap is told of each new engine; leader follows leadership.
func lead(ctx context.Context, st *store.Store, eng *reconcile.Engine, swap func(*reconcile.Engine), leader prometheus.Gauge, o Options) error {
	for ctx.Err() == nil {
		lctx, release, err := st.Lead(ctx, o.LeaderPoll)
		if err != nil {
			return err
		}
		o.Logger.Info("controller leads; syncing")
		leader.Set(1)
		done := make(chan error, 1)
		go func() { done <- eng.Run(lctx) }()
		watchGeneration(lctx, st, eng, o.LeaderPoll, o.Logger)
		err = <-done
		release()
		leader.Set(0)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("sync engine: %w", err)
		}
		if ctx.Err() == nil {
			o.Logger.Warn("controller lost leadership")
			// The engine cannot be run twice; a new one takes over.
			eng = reconcile.New(Source{st}, StatusSink{st}, o.Engine)
			swap(eng)
		}
	}
	return nil
}

// watchGeneration triggers the engine when another replica's API wrote, until
// ctx ends. Writes through this replica trigger it directly.
func watchGeneration(ctx context.Context, st *store.Store, eng *reconcile.Engine, every time.Duration, log *slog.Logger) {
	var last int64 = -1
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		g, err := st.Generation(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("reading the store's generation", "err", err)
		case err == nil && g != last:
			if last != -1 {
				eng.Trigger()
			}
			last = g
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
