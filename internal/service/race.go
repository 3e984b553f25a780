package service

import (
	"fmt"
	"net/http"

	"weft.dev/weft/internal/balance"
)

// verdict classifies one copy's result for the race.
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
	// verdictCancelled: the copy's context ended before an answer.
	verdictCancelled
	// verdictRetriable: a gRPC answer that is only a status the server
	// could not serve with (UNAVAILABLE and the like): a failure for
	// health, retried like one while the budget lasts, and returned if
	// nothing better comes.
	verdictRetriable
)

var verdictNames = [...]string{"good", "bad", "overload", "failed", "cancelled", "retriable"}

func (v verdict) String() string { return verdictNames[v] }

// classify judges an attempt from its answer or error. cancelled says the
// attempt's context ended, which makes any error a cancellation; retryOn
// is the set of retriable gRPC codes.
func classify(resp *http.Response, err error, cancelled bool, retryOn grpcCodes) verdict {
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
	case retriableGRPC(resp, retryOn):
		return verdictRetriable
	}
	return verdictGood
}

// race decides the fate of the copies of one HTTP request: which copy goes
// out when, which answer is returned, which copies are cancelled, and how
// each copy's work ends in the balancer. It is a pure state machine: it
// starts no goroutine, reads no clock and sends nothing. The caller feeds
// it inputs (start, answer, noCandidate, timer), then carries out the
// actions that take returns, in order, and feeds back what happens. A race
// is not safe for concurrent use.
//
// The rules, for a hedged race and for a plain one (hedge false, where
// copies go one at a time and the timer never fires):
//   - The first good answer (not 5xx) wins: it is delivered and every copy
//     still running is cancelled. "Good" is decided at the answer's
//     headers: a target that sent good headers has committed to the
//     answer, and waiting for the body would make every hedged answer a
//     buffered one.
//   - A copy that failed before any byte of an answer is replaced by one
//     to a candidate not yet tried while the retry budget lasts; it also
//     sends the backup at once, if there is to be one.
//   - An overloaded candidate is replaced without spending the budget;
//     its answer is kept to return if every candidate is full.
//   - A retriable gRPC status (the server served nothing) counts as a
//     failure at once, is kept to return if nothing better comes, and is
//     replaced like a failure while the retry budget lasts; it also sends
//     the backup at once.
//   - A 5xx answer is never retried (the target may have acted on it): it
//     is kept to return if nothing better comes, and sends the backup at
//     once. A kept 5xx beats a kept overload.
//   - The backup copy goes when the hedge timer fires, at most once.
//   - A copy cancelled while the race runs means the client went away:
//     the race gives up at once.
//   - When no copy runs any more, the kept answer is delivered, or the
//     race gives up with the last failure.
//   - Once delivered, an answer is the client's: nothing that happens to
//     it afterwards (a body that breaks while streaming) reaches the race,
//     and an answer for a copy already settled is ignored.
//
// Every copy that ran ends in the balancer exactly once: by an actEnd, or,
// for the delivered copy whose count is still open, when the client closes
// the answer (with the outcome of its status).
type race struct {
	hedge    bool // a backup copy may go
	retries  int  // failed copies that may still be replaced
	copies   []raceCopy
	backedUp bool
	kept     int // copy whose answer is returned if nothing good comes; 0 none
	lastErr  error
	over     bool
	out      []raceAction
}

type raceCopy struct {
	backup  bool
	state   copyState
	verdict verdict
	status  int
}

type copyState uint8

const (
	copyRunning   copyState = iota
	copyKept                // answered; its answer is race.kept
	copyCancelled           // lost while running; its answer still comes back
	copySettled             // nothing more to do for it
)

// raceAction is one thing the caller must do. Copies are numbered from 1 in
// launch order.
type raceAction struct {
	kind    actionKind
	copy    int
	backup  bool            // actLaunch: the hedge copy
	outcome balance.Outcome // actEnd
	sample  bool            // actEnd: the copy's time is a latency sample
	err     error           // actGiveUp: the last failure; nil when no copy could be sent
}

type actionKind uint8

const (
	// actLaunch: send copy to a candidate not yet tried, or report
	// noCandidate when there is none.
	actLaunch actionKind = iota + 1
	// actCancel: copy lost while running; stop it. Its answer must still
	// be fed to the race, which then ends it.
	actCancel
	// actEnd: copy's work ends in the balancer with outcome.
	actEnd
	// actDrop: copy's answer (if any) is not returned: close it.
	actDrop
	// actDeliver: return copy's answer to the client. The race is over.
	actDeliver
	// actGiveUp: return err to the client. The race is over.
	actGiveUp
)

func newRace(hedge bool, retries int) *race {
	return &race{hedge: hedge, retries: retries}
}

// take returns the actions to carry out and forgets them; inputs fed while
// carrying them out queue new ones for the next take.
func (r *race) take() []raceAction {
	out := r.out
	r.out = nil
	return out
}

// start sends the primary copy.
func (r *race) start() {
	if len(r.copies) > 0 {
		panic("service: race started twice")
	}
	r.launch(false)
}

// timer reports that the hedge delay passed: the backup goes, unless it
// went already or the race is over.
func (r *race) timer() {
	if !r.over {
		r.sendBackup()
	}
}

// noCandidate reports that copy n found no candidate to go to (all tried,
// saturated or gone): a primary hands over to the backup. When the very
// first copy finds none, there is nothing to race.
func (r *race) noCandidate(n int) {
	c := r.running(n)
	if c == nil {
		return
	}
	c.state = copySettled
	if n > 1 && !c.backup {
		r.sendBackup()
	}
	r.settle()
}

// answer reports what copy n got: its verdict, the status of its answer
// (0 without one) and the error to tell the client if it failed.
func (r *race) answer(n int, v verdict, status int, err error) {
	c := &r.copies[n-1]
	switch c.state {
	case copyCancelled:
		// A loser: what it ran is a lower bound on the candidate's
		// latency, unless it only said it was full.
		c.state = copySettled
		r.emit(raceAction{kind: actEnd, copy: n, outcome: balance.Cancelled, sample: v != verdictOverload})
		r.emit(raceAction{kind: actDrop, copy: n})
		return
	case copyRunning:
	default:
		return
	}
	c.verdict, c.status = v, status
	switch v {
	case verdictGood:
		c.state = copySettled
		r.finish(raceAction{kind: actDeliver, copy: n})
		return
	case verdictCancelled:
		c.state = copySettled
		r.emit(raceAction{kind: actEnd, copy: n, outcome: balance.Cancelled, sample: true})
		r.emit(raceAction{kind: actDrop, copy: n})
		r.finish(raceAction{kind: actGiveUp, err: err})
		return
	case verdictOverload:
		// Full, not failing: no sample and no strike towards ejection,
		// and the slot is given back at once rather than when the race
		// ends.
		r.emit(raceAction{kind: actEnd, copy: n, outcome: balance.Cancelled})
		r.keep(n)
		r.launch(c.backup)
	case verdictBad:
		r.keep(n)
		r.sendBackup()
	case verdictRetriable:
		r.emit(raceAction{kind: actEnd, copy: n, outcome: balance.GatewayError, sample: true})
		r.keep(n)
		if r.retries > 0 {
			r.retries--
			r.launch(c.backup)
		}
		r.sendBackup()
	case verdictFailed:
		c.state = copySettled
		r.lastErr = err
		r.emit(raceAction{kind: actEnd, copy: n, outcome: balance.ConnectFailure, sample: true})
		r.emit(raceAction{kind: actDrop, copy: n})
		if r.retries > 0 {
			r.retries--
			r.launch(c.backup)
		}
		r.sendBackup()
	}
	r.settle()
}

// running returns copy n if it is still running.
func (r *race) running(n int) *raceCopy {
	c := &r.copies[n-1]
	if c.state != copyRunning {
		return nil
	}
	return c
}

func (r *race) emit(a raceAction) { r.out = append(r.out, a) }

func (r *race) launch(backup bool) {
	r.copies = append(r.copies, raceCopy{backup: backup})
	if backup {
		r.backedUp = true
	}
	r.emit(raceAction{kind: actLaunch, copy: len(r.copies), backup: backup})
}

func (r *race) sendBackup() {
	if r.hedge && !r.backedUp {
		r.launch(true)
	}
}

// keep makes copy n's answer the one to return if nothing good comes,
// dropping the one kept before, except that a 5xx beats an overload: the
// 5xx came from a target, the overload says nothing about the request.
func (r *race) keep(n int) {
	c := &r.copies[n-1]
	if r.kept != 0 && r.copies[r.kept-1].verdict == verdictBad && c.verdict == verdictOverload {
		c.state = copySettled
		r.emit(raceAction{kind: actDrop, copy: n})
		return
	}
	r.discardKept()
	c.state = copyKept
	r.kept = n
}

// discardKept drops the kept answer, ending its work if still counted.
func (r *race) discardKept() {
	if r.kept == 0 {
		return
	}
	k := &r.copies[r.kept-1]
	k.state = copySettled
	if k.verdict == verdictBad {
		r.emit(raceAction{kind: actEnd, copy: r.kept, outcome: balance.OutcomeForStatus(k.status), sample: true})
	}
	r.emit(raceAction{kind: actDrop, copy: r.kept})
	r.kept = 0
}

// settle ends the race once no copy runs: with the kept answer, or the
// last failure.
func (r *race) settle() {
	if r.over {
		return
	}
	for i := range r.copies {
		if r.copies[i].state == copyRunning {
			return
		}
	}
	if r.kept != 0 {
		n := r.kept
		r.copies[n-1].state = copySettled
		r.kept = 0
		r.finish(raceAction{kind: actDeliver, copy: n})
		return
	}
	r.finish(raceAction{kind: actGiveUp, err: r.lastErr})
}

// finish ends the race with last (a delivery or a give-up): copies still
// running are cancelled and a kept answer not delivered is dropped.
func (r *race) finish(last raceAction) {
	r.over = true
	for i := range r.copies {
		if r.copies[i].state == copyRunning {
			r.copies[i].state = copyCancelled
			r.emit(raceAction{kind: actCancel, copy: i + 1})
		}
	}
	r.discardKept()
	r.emit(last)
}

// String renders an action as the race scripts in testdata show it.
func (a raceAction) String() string {
	switch a.kind {
	case actLaunch:
		return fmt.Sprintf("launch %d %s", a.copy, copyLabel(a.backup))
	case actCancel:
		return fmt.Sprintf("cancel %d", a.copy)
	case actEnd:
		s := fmt.Sprintf("end %d %s", a.copy, a.outcome)
		if !a.sample {
			s += " no-sample"
		}
		return s
	case actDrop:
		return fmt.Sprintf("drop %d", a.copy)
	case actDeliver:
		return fmt.Sprintf("deliver %d", a.copy)
	case actGiveUp:
		if a.err == nil {
			return "give-up: no candidate"
		}
		return "give-up: " + a.err.Error()
	}
	return fmt.Sprintf("action(%d)", a.kind)
}
