package broker

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Access is what a client of the event API asks to do with a subject.
type Access uint8

// Accesses; a credential grants each by its own list of patterns.
const (
	Publish   Access = iota + 1 // POST an event to a topic or a queue
	Subscribe                   // stream a topic pattern or consume a queue
)

func (a Access) String() string {
	if a == Subscribe {
		return "subscribe"
	}
	return "publish"
}

// Errors that Config.Authorize returns (wrapped, with the reason).
var (
	// ErrUnauthenticated: no credential, or one the site does not know
	// or that expired; 401 with WWW-Authenticate: Bearer.
	ErrUnauthenticated = errors.New("the event API needs a credential")
	// ErrForbidden: the credential does not allow this access to this
	// subject; 403.
	ErrForbidden = errors.New("the credential does not allow this")
)

// credential is the bearer token of a request (RFC 6750), or "".
func credential(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// authorize asks Config.Authorize whether the request may have access to
// subject (a subject to publish to, a pattern or queue to subscribe to),
// counts a refusal, and answers it; it reports whether the request may go
// on. Without Config.Authorize the API is open.
func (b *Broker) authorize(w http.ResponseWriter, r *http.Request, access Access, subject string) bool {
	if b.cfg.Authorize == nil {
		return true
	}
	err := b.cfg.Authorize(credential(r), access, subject)
	if err == nil {
		return true
	}
	reason := "forbidden"
	if errors.Is(err, ErrUnauthenticated) {
		reason = "unauthenticated"
		w.Header().Set("WWW-Authenticate", `Bearer realm="weft-events"`)
	} else if errors.Is(err, ErrForbidden) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="weft-events", error="insufficient_scope"`)
	}
	b.m.authRefused.WithLabelValues(access.String(), reason).Inc()
	b.log.Debug("event API request refused", "access", access.String(), "subject", subject, "client", r.RemoteAddr, "err", err)
	writeError(w, err)
	return false
}

func newAuthRefused() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_events_auth_refused_total",
		Help: "Event API requests refused for their credential, by access (publish, subscribe) and reason (unauthenticated, forbidden)."},
		[]string{"access", "reason"})
}

// whileValid returns r with a context that also ends once its credential
// stops being valid (Config.CredentialDone), and the function that
// releases it: a live subscription ends with its credential.
func (b *Broker) whileValid(r *http.Request) (*http.Request, context.CancelFunc) {
	if b.cfg.CredentialDone == nil {
		return r, func() {}
	}
	done := b.cfg.CredentialDone(credential(r))
	if done == nil {
		return r, func() {}
	}
	ctx, cancel := context.WithCancel(r.Context())
	go func() {
		select {
		case <-done:
			b.log.Debug("subscription ended: its credential was deleted or expired", "client", r.RemoteAddr)
			cancel()
		case <-ctx.Done():
		}
	}()
	return r.WithContext(ctx), cancel
}
