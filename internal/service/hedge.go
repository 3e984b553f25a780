package service

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"weft.dev/weft/internal/balance"
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

// verdict classifies one attempt's result for the retry and hedge logic.
type verdict uint8

const (
	// verdictGood is an answer to return: not 5xx.
	verdictGood verdict = iota
	// verdictBad is a 5xx answer from the target: returned if nothing
	// better comes, never retried (the target may have acted on it).
	verdictBad
	// verdictOverload: the candidate is saturated; try the next one
	// without spending a retry or blaming its health.
	verdictOverload
	// verdictFailed: no byte of an answer (path or target failure).
	verdictFailed
	// verdictCancelled: the client or the hedge gave up.
	verdictCancelled
)

// classify judges an attempt from its answer or error. cancelled says the
// attempt's context ended, which makes any error a cancellation.
func classify(resp *http.Response, err error, cancelled bool) verdict {
	switch {
	case err != nil && cancelled:
		return verdictCancelled
	case err != nil:
		return verdictFailed
	case resp.Header.Get(HeaderOverload) != "":
		return verdictOverload
	case resp.Header.Get(HeaderError) != "":
		return verdictFailed
	case resp.StatusCode >= 500:
		return verdictBad
	}
	return verdictGood
}

// quantileWindow estimates a quantile of the recent latencies of an
// address: the last len(buf) samples, sorted lazily. Pure and not safe for
// concurrent use; the Manager's lock guards it.
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

// hedged sends req to a primary candidate and, after delay, a backup copy
// to another one, on a path that shares no transit site with the
// primary's where the graph has one. The first good answer (not 5xx) wins
// and the other copy is cancelled: its context ends, which closes its link
// stream, which the connector site passes to the target as a cancelled
// request. A copy that fails, overflows or answers 5xx does not end the
// race: its replacement, or the backup at once, goes out instead, within
// the retry budget; when nothing good comes, the last 5xx answer or error
// is returned.
//
// "Good" is decided at the answer's headers rather than after its whole
// body: waiting for the body would make every hedged answer a buffered
// one (no streaming, memory per request), and a target that sent good
// headers has committed to the answer. The latency samples are time to
// headers too, as for unhedged requests.
func (in *ingress) hedged(req *http.Request, p plan, delay time.Duration, retries int) (*http.Response, error) {
	ctx := req.Context()
	tried := map[balance.Key]bool{}
	results := make(chan *attempt, len(p.bcands))
	var (
		running  []*attempt
		primary  *attempt
		backedUp bool
		fallback *attempt // the best bad answer so far (a 5xx beats an overload)
		lastErr  error
	)
	launch := func(backup bool) bool {
		t, ok := in.pickStart(p, tried)
		if !ok {
			return false
		}
		if backup && primary != nil && t.cand.Site != in.m.cfg.Self {
			if path, ok := in.m.cfg.Net.Table().DisjointPath(t.cand.Site, primary.t.cand.Path); ok && len(path) > 0 {
				t.cand.Path = path
			}
		}
		a := in.newAttempt(ctx, t, copyLabel(backup))
		if primary == nil {
			primary = a
		}
		running = append(running, a)
		go func() {
			in.run(a, req)
			results <- a
		}()
		return true
	}
	settle := func(a *attempt) {
		running = slices.DeleteFunc(running, func(r *attempt) bool { return r == a })
	}
	keep := func(a *attempt) {
		if fallback != nil {
			if fallback.v == verdictBad && a.v == verdictOverload {
				in.drop(a, balance.Cancelled, 0)
				return
			}
			in.drop(fallback, fallbackOutcome(fallback), fallback.took)
		}
		fallback = a
	}

	if !launch(false) {
		return nil, fmt.Errorf("%w: every candidate for %q is saturated", errNoCandidate, in.address)
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	backup := func() {
		if !backedUp {
			backedUp = true
			launch(true)
		}
	}
	for len(running) > 0 {
		select {
		case <-timer.C:
			backup()
		case a := <-results:
			settle(a)
			switch a.v {
			case verdictGood:
				in.cancelLosers(running, results)
				if fallback != nil {
					in.drop(fallback, fallbackOutcome(fallback), fallback.took)
				}
				return in.deliver(a), nil
			case verdictCancelled:
				in.drop(a, balance.Cancelled, a.took)
				lastErr = a.err
			case verdictOverload:
				keep(a)
				if !launch(a.label == "backup") {
					backup()
				}
			case verdictBad:
				keep(a)
				backup()
			case verdictFailed:
				lastErr = a.failure()
				in.drop(a, balance.ConnectFailure, a.took)
				if retries > 0 {
					retries--
					launch(a.label == "backup")
				}
				backup()
			}
		}
	}
	if fallback != nil {
		if fallback.v == verdictOverload {
			in.done(fallback.t.key, 0, balance.Cancelled)
			fallback.resp.Body = wrapBody(fallback.resp.Body, fallback.cancel)
			return fallback.resp, nil
		}
		return in.deliver(fallback), nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("%w: every candidate for %q is saturated", errNoCandidate, in.address)
	}
	return nil, lastErr
}

// fallbackOutcome is how a kept answer that is not returned ends.
func fallbackOutcome(a *attempt) balance.Outcome {
	if a.v == verdictOverload {
		return balance.Cancelled
	}
	return balance.OutcomeForStatus(a.resp.StatusCode)
}

// drop ends an attempt that is not returned to the client.
func (in *ingress) drop(a *attempt, o balance.Outcome, latency time.Duration) {
	if o == balance.Cancelled && a.v == verdictOverload {
		latency = 0 // an overload answer says nothing about latency
	}
	closeResponse(a.resp)
	a.cancel()
	in.done(a.t.key, latency, o)
}

// cancelLosers cancels the copies still running after a winner and, in the
// background, ends each as Cancelled with the time it had run when
// cancelled: a lower bound on its latency, which the balancer uses as such.
func (in *ingress) cancelLosers(running []*attempt, results <-chan *attempt) {
	if len(running) == 0 {
		return
	}
	at := in.m.cfg.Now()
	for _, a := range running {
		a.cancel()
	}
	go func(n int) {
		for range n {
			a := <-results
			ran := at.Sub(a.start)
			if a.v == verdictGood || a.v == verdictBad {
				ran = a.took // it answered before it saw the cancel
			}
			in.drop(a, balance.Cancelled, ran)
		}
	}(len(running))
}
