package service

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"weft.dev/weft/internal/resource"
)

// Headers weft adds to or reads from HTTP requests and answers.
const (
	// HeaderCopy marks the two copies of a hedged request, so that a target
	// can tell them apart in its logs: "primary" or "backup".
	HeaderCopy = "Weft-Copy"
	// HeaderHedge set to "1" by a client allows hedging and retrying a
	// request whose method alone does not say it is idempotent.
	HeaderHedge = "Weft-Hedge"
	// HeaderOverload on a 503 says the connector site is at its limits and
	// never reached a target: the ingress tries its next candidate and the
	// answer says nothing about the candidate's health.
	HeaderOverload = "Weft-Overload"
	// HeaderError on a 502 or 503 says the connector site produced the
	// answer itself because the target could not be reached (or the
	// address is no longer served there): no byte of a real answer exists,
	// so an idempotent request may be retried elsewhere.
	HeaderError = "Weft-Error"
)

type hedgeMode uint8

const (
	hedgeOff hedgeMode = iota
	hedgeAlways
	hedgeAfter
	hedgeAuto
)

// hedgePolicy says when a backup copy of a hedgeable request is sent.
type hedgePolicy struct {
	mode  hedgeMode
	after time.Duration // for hedgeAfter
}

// parseHedge reads a validated ListenerSpec.Hedge.
func parseHedge(s string) (hedgePolicy, error) {
	switch s {
	case "", resource.HedgeOff:
		return hedgePolicy{}, nil
	case resource.HedgeAlways:
		return hedgePolicy{mode: hedgeAlways}, nil
	case resource.HedgeAuto:
		return hedgePolicy{mode: hedgeAuto}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return hedgePolicy{}, fmt.Errorf("hedge %q is not off, always, auto or a positive duration", s)
	}
	return hedgePolicy{mode: hedgeAfter, after: d}, nil
}

// delay is how long after the primary the backup copy goes; false means no
// backup. With auto it is the address's recent p95, and no backup until
// enough answers were measured to know it: hedging on a guess would double
// the load of a new address for nothing.
func (p hedgePolicy) delay(p95 time.Duration, known bool) (time.Duration, bool) {
	switch p.mode {
	case hedgeAlways:
		return 0, true
	case hedgeAfter:
		return p.after, true
	case hedgeAuto:
		if known {
			return p95, true
		}
	}
	return 0, false
}

// hedgeable reports whether a request may be sent twice at once: the safe
// methods of the issue, or any method the client vouches for. PUT and
// DELETE are idempotent but not safe; two concurrent copies of them can
// interleave with other writers, so they are only retried, not hedged.
func hedgeable(method string, h http.Header) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return h.Get("Upgrade") == "" // a tunnel cannot be duplicated
	}
	return h.Get(HeaderHedge) == "1"
}

// retryable reports whether a request that failed before any byte of its
// answer may be sent again: RFC 9110's idempotent methods, or one the
// client vouches for.
func retryable(method string, h http.Header) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return h.Get(HeaderHedge) == "1"
}

// quantileWindow estimates a quantile of the recent latencies of an
// address: the last len(buf) samples, sorted lazily. Pure and not safe for
// concurrent use; its address's lock guards it.
//
// A window of samples rather than a streaming estimator (P², t-digest)
// because "recent" is what auto hedging needs: after a backend recovers,
// its slow past must leave the estimate within a few hundred requests.
type quantileWindow struct {
	buf    []time.Duration
	n      int // samples ever added
	sorted []time.Duration
	stale  int // samples added since sorted was made
}

const (
	quantileWindowSize = 256
	// quantileMinSamples is how many samples make an estimate: below it a
	// p95 is just the maximum of a handful.
	quantileMinSamples = 20
	// quantileResort is how many new samples trigger a new sort, so that a
	// busy address sorts once per 16 requests rather than on each.
	quantileResort = 16
)

func (w *quantileWindow) add(d time.Duration) {
	if w.buf == nil {
		w.buf = make([]time.Duration, 0, quantileWindowSize)
	}
	if len(w.buf) < quantileWindowSize {
		w.buf = append(w.buf, d)
	} else {
		w.buf[w.n%quantileWindowSize] = d
	}
	w.n++
	w.stale++
}

// quantile returns the q-quantile (0 < q <= 1) of the window, nearest rank,
// and false with fewer than quantileMinSamples samples.
func (w *quantileWindow) quantile(q float64) (time.Duration, bool) {
	if len(w.buf) < quantileMinSamples {
		return 0, false
	}
	if w.sorted == nil || w.stale >= quantileResort || len(w.sorted) < quantileMinSamples {
		w.sorted = append(w.sorted[:0], w.buf...)
		slices.Sort(w.sorted)
		w.stale = 0
	}
	i := int(q*float64(len(w.sorted))+0.999999) - 1
	i = max(0, min(i, len(w.sorted)-1))
	return w.sorted[i], true
}

// copyLabel is the Weft-Copy value of a hedged attempt.
func copyLabel(backup bool) string {
	if backup {
		return "backup"
	}
	return "primary"
}
