package site

import (
	"context"
	"crypto/subtle"
	"net/http"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/console"
)

// consoleInterval is how often the console samples the site's metrics and
// pushes a snapshot to open pages; consoleSamples of them span the rates'
// "last minutes".
const (
	consoleInterval = 2 * time.Second
	consoleSamples  = 150
	consoleErrors   = 100
)

// registerConsole serves the web console on the admin mux, behind the admin
// API's credential.
func (s *Site) registerConsole(mux *http.ServeMux) {
	console.New(console.Config{
		Kind:  console.KindSite,
		Title: "site " + s.name,
		Check: func(_ context.Context, cred string) bool {
			return subtle.ConstantTimeCompare([]byte(cred), []byte(s.adminToken)) == 1
		},
		Snapshot: console.SiteSnapshots(s, s.sampler, s.recent),
		Interval: consoleInterval,
		Done:     s.ctx.Done(),
		Logger:   s.log,
	}).Register(mux)
}

// EventConfig is the site's topics, queues and push subscriptions.
func (s *Site) EventConfig() apitype.EventConfig {
	ts, qs, ss := s.events.Config()
	return apitype.EventConfig{Topics: orEmpty(ts), Queues: orEmpty(qs), Subscriptions: orEmpty(ss)}
}

var _ console.SiteSource = (*Site)(nil)
