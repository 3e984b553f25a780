package controller

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"weft.dev/weft/internal/console"
	"weft.dev/weft/internal/controller/store"
)

// consoleInterval is how often an open controller console is refreshed:
// each refresh plans every traffic group, so less often than a site's.
const consoleInterval = 5 * time.Second

// registerConsole serves the web console on mux, behind the API's tokens:
// the console reads the API (apiHandler) with the token it logged in with,
// so a read-only token sees what it may read and nothing more.
func registerConsole(mux *http.ServeMux, apiHandler http.Handler, st *store.Store, done <-chan struct{}, log *slog.Logger) {
	console.New(console.Config{
		Kind:  console.KindController,
		Title: "controller",
		Check: func(ctx context.Context, cred string) bool {
			_, err := st.TokenRole(ctx, cred)
			return err == nil
		},
		Snapshot: console.ControllerSnapshots(apiHandler),
		Interval: consoleInterval,
		Done:     done,
		Logger:   log,
	}).Register(mux)
}
