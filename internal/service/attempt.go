package service

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/routing"
)

// attempt is one copy of a request sent to one candidate.
type attempt struct {
	n      int // the race's copy number
	key    balance.Key
	cand   routing.Candidate
	label  string // Weft-Copy, when hedged
	reason string // why this candidate, for its span
	// skipped are the candidates the balancer passed over for this one,
	// and why ("site:reason"), for its span; nil when not traced.
	skipped []string
	ctx     context.Context
	cancel  context.CancelFunc
	start   time.Time

	// Set by run, read after the attempt is answered.
	resp *http.Response
	err  error
	v    verdict
	took time.Duration // to the answer's headers, or to the failure

	// Set by the goroutine that owns the race.
	cancelledAt time.Time // when it lost; zero if it did not
	ended       bool      // its work ended in the balancer
}

// failure is the error of a failed attempt, for logs and the client.
func (a *attempt) failure() error {
	if a.err != nil {
		return a.err
	}
	return fmt.Errorf("site %s: %s %s", a.cand.SiteName, a.resp.Status, a.resp.Header.Get(HeaderError))
}

// status is the status of the attempt's answer, 0 without one.
func (a *attempt) status() int {
	if a.resp == nil {
		return 0
	}
	return a.resp.StatusCode
}

// latency is the attempt's time to its answer's headers or to its failure.
// A copy cancelled because it lost counts the time it ran until then: a
// lower bound, which the balancer takes as such, unless it answered
// before it saw the cancel.
func (a *attempt) latency() time.Duration {
	if !a.cancelledAt.IsZero() && a.v != verdictGood && a.v != verdictBad {
		return max(0, a.cancelledAt.Sub(a.start))
	}
	return a.took
}

// run sends the attempt and classifies what came back.
func (in *ingress) run(a *attempt, req *http.Request) {
	ctx, span := in.m.startAttempt(a.ctx, in.addr.name, a.cand, a.label, a.reason, a.skipped)
	local := a.cand.Site == in.m.cfg.Self
	// A copy of its own (header and URL) only for a copy that changes
	// them: a hedged one gets its label, a traced one its traceparent, and
	// roundTripLocal rewrites both. A remote attempt's transport only
	// reads them.
	var out *http.Request
	switch {
	case a.label != "" || local || span.SpanContext().IsValid():
		out = req.Clone(ctx)
		// The trailer's values come in once the body has been read:
		// the copy must see them, not the names-only map of now.
		out.Trailer = req.Trailer
	default:
		out = withContext(req, ctx) // req itself for a copy sent alone
	}
	if req.GetBody != nil {
		out.Body, _ = req.GetBody()
	}
	if a.label != "" {
		out.Header.Set(HeaderCopy, a.label)
	}
	injectTrace(ctx, out.Header)
	if local {
		a.resp, a.err = in.m.roundTripLocal(in.addr, out)
	} else {
		a.resp, a.err = in.m.remoteTransport(in.addr, a.cand.Path).RoundTrip(out)
	}
	a.took = in.m.cfg.Clock.Since(a.start)
	a.v = classify(a.resp, a.err, a.ctx.Err() != nil, in.retryOn)
	endAttempt(span, a)
}

// raceRun carries out the race of one request: it sends the copies the
// race launches and feeds their answers and the hedge timer back. Hedged
// copies run in goroutines of their own; without a hedge one copy runs at
// a time, in the caller's goroutine. The goroutine of RoundTrip owns the
// race until it is over; then, if cancelled copies are still out, a drain
// goroutine takes it over to end them as they come back.
type raceRun struct {
	in       *ingress
	req      *http.Request
	r        *race
	hedged   bool
	attempts []*attempt // copy n is attempts[n-1]; nil if it found no candidate
	tried    map[balance.Key]bool
	answers  answerQueue
	out      int // copies sent in their own goroutine and not answered yet

	over bool
	resp *http.Response
	err  error

	// Backing for r, attempts and answers' queue of a race of one or two
	// copies, the usual ones: not an allocation each per request.
	race        race
	attemptsBuf [2]*attempt
	answersBuf  [2]*attempt
}

// runRace sends req as the race decides: hedged after delay (at once when
// it is not positive), with up to retries failures replaced.
func (in *ingress) runRace(req *http.Request, hedged bool, delay time.Duration, retries int) (*http.Response, error) {
	rr := &raceRun{
		in: in, req: req, hedged: hedged,
		race:    race{hedge: hedged, retries: retries},
		tried:   map[balance.Key]bool{},
		answers: answerQueue{ready: make(chan struct{}, 1)},
	}
	rr.r, rr.attempts, rr.answers.q = &rr.race, rr.attemptsBuf[:0], rr.answersBuf[:0]
	rr.r.start()
	var fire <-chan time.Time
	if hedged {
		if delay <= 0 {
			rr.r.timer()
		} else {
			t := in.m.cfg.Clock.NewTimer(delay)
			defer t.Stop()
			fire = t.C()
		}
	}
	for {
		rr.apply()
		if rr.over {
			break
		}
		if a := rr.answers.pop(); a != nil {
			rr.feed(a)
			continue
		}
		select {
		case <-fire:
			fire = nil
			rr.r.timer()
		case <-rr.answers.ready:
		}
	}
	if rr.out > 0 && !in.m.life.goroutine(rr.drain) {
		rr.drain() // the manager is closing: the losers are ending
	}
	return rr.resp, rr.err
}

// drain ends the cancelled copies still out once the race is over.
func (rr *raceRun) drain() {
	for rr.out > 0 {
		a := rr.answers.pop()
		if a == nil {
			<-rr.answers.ready
			continue
		}
		rr.feed(a)
		rr.apply()
	}
}

func (rr *raceRun) feed(a *attempt) {
	if rr.hedged {
		rr.out--
	}
	var err error
	if a.v == verdictFailed || a.v == verdictCancelled {
		err = a.failure()
	}
	rr.r.answer(a.n, a.v, a.status(), err)
}

// apply carries out what the race asks for, including what it asks for
// in answer to inputs fed meanwhile (a launch that found no candidate).
func (rr *raceRun) apply() {
	for acts := rr.r.take(); len(acts) > 0; acts = rr.r.take() {
		for _, act := range acts {
			rr.do(act)
		}
	}
}

func (rr *raceRun) do(act raceAction) {
	in := rr.in
	switch act.kind {
	case actLaunch:
		rr.launch(act.copy, act.backup)
		return
	case actGiveUp:
		rr.over, rr.err = true, act.err
		if rr.err == nil {
			rr.err = fmt.Errorf("%w: every candidate for %q is saturated or was tried", errNoCandidate, in.addr.name)
		}
		return
	}
	a := rr.attempts[act.copy-1]
	switch act.kind {
	case actCancel:
		a.cancelledAt = in.m.cfg.Clock.Now()
		a.cancel()
	case actEnd:
		var lat time.Duration
		if act.sample {
			lat = a.latency()
		}
		a.ended = true
		in.addr.requestDone(in.m.cfg.Clock.Now(), a.key, lat, act.outcome)
	case actDrop:
		closeResponse(a.resp)
		a.cancel()
	case actDeliver:
		markWinner(rr.req.Context(), a)
		rr.over, rr.resp = true, in.deliver(a)
	}
}

// launch sends copy n to a candidate not tried yet, or tells the race
// there is none.
func (rr *raceRun) launch(n int, backup bool) {
	in := rr.in
	if n != len(rr.attempts)+1 {
		panic(fmt.Sprintf("service: race launched copy %d after %d", n, len(rr.attempts)))
	}
	cand, key, skips, ok := in.addr.pickRequest(in.m.cfg.Clock.Now(), rr.tried, in.policy, in.m.cfg.Net, in.m.cfg.Tracer.On())
	if !ok {
		markSkipped(rr.req.Context(), skips)
		rr.attempts = append(rr.attempts, nil)
		rr.r.noCandidate(n)
		return
	}
	if primary := rr.primary(); backup && primary != nil && cand.Site != in.m.cfg.Self {
		// The backup goes on a path that shares no transit site with the
		// primary's, where the graph has one, so that one slow or broken
		// transit site cannot hold both copies.
		if path, ok := in.m.cfg.Net.Table().DisjointPath(cand.Site, primary.cand.Path); ok && len(path) > 0 {
			cand.Path = path
		}
	}
	if backup {
		in.m.cfg.Metrics.Hedges.WithLabelValues(in.addr.name).Inc()
	} else {
		in.m.countOverflow(in.addr, in.addr.view.Load().http, cand, in.policy)
	}
	var prev *attempt
	if n > 1 {
		prev = rr.attempts[n-2]
	}
	a := &attempt{n: n, key: key, cand: cand, start: in.m.cfg.Clock.Now(), reason: attemptReason(n, backup, prev), skipped: skips}
	if rr.hedged {
		a.ctx, a.cancel = context.WithCancel(rr.req.Context())
	} else {
		// Copies go one at a time, each over before the next: the only
		// one ever cancelled while it runs is cancelled with the request,
		// so it may share the request's context (a child context costs
		// the request's context a map of children).
		a.ctx, a.cancel = rr.req.Context(), func() {}
	}
	rr.attempts = append(rr.attempts, a)
	if !rr.hedged {
		in.run(a, rr.req)
		rr.answers.put(a)
		return
	}
	a.label = copyLabel(backup)
	rr.out++
	send := func() {
		in.run(a, rr.req)
		rr.answers.put(a)
	}
	if !in.m.life.goroutine(send) {
		send() // the manager is closing: the request's context is ending
	}
}

// primary is the first copy sent, nil if it found no candidate or none
// was sent yet.
func (rr *raceRun) primary() *attempt {
	if len(rr.attempts) == 0 {
		return nil
	}
	return rr.attempts[0]
}

// deliver returns a's answer to the client; a's context lives, and its
// work counts as in flight unless it ended already, until the client
// closes the body.
func (in *ingress) deliver(a *attempt) *http.Response {
	ended, key, took, resp := a.ended, a.key, a.took, a.resp
	a.resp.Body = wrapBody(a.resp.Body, func() {
		o := answerOutcome(resp, in.retryOn, a.ctx.Err() != nil)
		a.cancel()
		if !ended {
			in.addr.requestDone(in.m.cfg.Clock.Now(), key, took, o)
		}
	})
	return a.resp
}

// answerQueue hands answered attempts to the goroutine that owns the race.
// Senders never block, so an attempt's goroutine ends as soon as its
// answer is in, whoever reads it and whenever.
type answerQueue struct {
	mu    sync.Mutex
	q     []*attempt
	ready chan struct{} // capacity 1: "the queue may have grown"
}

func (q *answerQueue) put(a *attempt) {
	q.mu.Lock()
	q.q = append(q.q, a)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop returns the oldest answer, or nil when none is waiting.
func (q *answerQueue) pop() *attempt {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q) == 0 {
		return nil
	}
	a := q.q[0]
	q.q = q.q[1:]
	return a
}
