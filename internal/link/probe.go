package link

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// On-demand probing: the heartbeat detector waits for a silence to outlast
// the peer's PING rhythm, but a stream open the peer does not answer is
// evidence sooner. Such an open makes the link suspect at once and sends a
// PROBE out of turn, which the peer answers with a PONG at once. The probe
// is judged against the round trips measured so far (their mean and jitter,
// phi-accrual style as in detector.go) rather than against the PING
// interval. While it is outstanding the link is suspect (Session.Suspect):
// callers route new streams around it, which is cheap and undone by the
// answer. A probe that stays unanswered, on a link from which nothing at all
// arrived for as long, keeps the link suspect until the peer speaks again
// and fails the opens waiting on it (ErrPeerUnresponsive), so that their
// callers take them elsewhere; it does not close the session, whose
// established streams may outlive a peer's stall: only DeadAfter of silence
// does (session.go). Well before that verdict, an open that asked for it
// (OnStall) is told when the probe has gone unanswered for a much tighter
// bound, so that its caller can try elsewhere while the open goes on.
// spec.md, "Probes", is the protocol side.

// prober is the state of one session's probing. It reads no clock: the
// session passes its now(), so tests step it by hand.
type prober struct {
	mu     sync.Mutex
	rtts   samples       // the last PING->PONG round trips
	gen    uint64        // counts probes; names the outstanding one
	sent   int64         // when the outstanding probe was sent; -1 when none is
	bound  int64         // how long it may go unanswered while the link is silent
	stall  int64         // how long unanswered and silent shows a stall (stallAt)
	due    int64         // when its timer was last armed to fire
	graced bool          // its one grace for a late timer was given
	answer chan struct{} // closed when the outstanding probe is answered
	lost   chan struct{} // closed when it is judged unanswered

	// ack is the write result of the last PROBE answer queued; only the
	// read loop uses it. At most one answer waits in the send queue, so a
	// peer flooding PROBEs cannot grow it.
	ack chan error

	// The stall bound's margin and ceiling, fixed at creation.
	stallPause, stallCeiling int64
}

func newProber(stallPause, stallCeiling int64) *prober {
	return &prober{sent: -1, stallPause: stallPause, stallCeiling: stallCeiling}
}

type verdict int

const (
	verdictClear      verdict = iota // nothing to judge: answered, or another probe's timer
	verdictWait                      // judge again later
	verdictUnanswered                // unanswered and silent past the bound: the probe ended
)

// pong records a PONG that echoed our stamp sent, sample ns after sending.
// Any PONG for a PING or PROBE sent at or after the outstanding probe
// answers it: the peer read the probe.
func (p *prober) pong(sent, sample int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rtts.add(sample)
	if p.sent >= 0 && sent >= p.sent {
		p.sent = -1
		close(p.answer)
	}
}

// start begins a probe at now, with a bound of mean + phiSigmas deviations
// (each at least minSigma) + pause of the measured round trips, at most
// ceiling, and a stall bound of their stallQuantile + stallPause, at most
// stallCeiling and the bound. It does nothing while a probe is
// outstanding, or before enough round trips were measured to judge one.
// The returned channel is closed when the probe is answered.
func (p *prober) start(now, pause, minSigma, ceiling int64) (gen uint64, bound int64, answered <-chan struct{}, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent >= 0 || p.rtts.n < detectorMinSamples {
		return 0, 0, nil, false
	}
	p.gen++
	p.sent, p.bound, p.graced = now, p.rtts.limit(pause, minSigma, ceiling), false
	p.stall = min(p.rtts.quantile(stallQuantile)+p.stallPause, p.stallCeiling, p.bound)
	p.due = now + p.bound
	p.answer, p.lost = make(chan struct{}), make(chan struct{})
	return p.gen, p.bound, p.answer, true
}

// pending returns a channel closed when the outstanding probe is judged
// unanswered; nil when no probe is outstanding.
func (p *prober) pending() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent < 0 {
		return nil
	}
	return p.lost
}

// stallAt is when the outstanding probe shows the peer stalled if neither
// its answer nor any other frame arrives before: its stall bound after it
// was sent or after lastRecv, whichever is later; false when no probe is
// outstanding.
func (p *prober) stallAt(lastRecv int64) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent < 0 {
		return 0, false
	}
	return max(p.sent, lastRecv) + p.stall, true
}

// suspect reports whether a probe is outstanding.
func (p *prober) suspect() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent >= 0
}

// judge is probe gen's timer firing at now; lastRecv is when the last frame
// of any kind was read. The probe is unanswered when both it and the last
// frame are bound old: frames still arriving (a long queue of data ahead of
// the PONG) defer the verdict. A timer that fired more than lateSlack after
// its due time means this process was not running (stopped, starved), and
// queued (the socket holds bytes not read yet) that its read loop is
// behind: either way the PONG may sit unread, so the probe gets one more
// bound from now, once (the heartbeat loop's grace, spec.md). It returns
// when to judge again for verdictWait, and the silence for
// verdictUnanswered, after which the caller ends the probe (fail).
func (p *prober) judge(gen uint64, now, lastRecv, lateSlack int64, queued bool) (verdict, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent < 0 || gen != p.gen {
		return verdictClear, 0
	}
	from := max(p.sent, lastRecv)
	silent := now >= from+p.bound
	if (now-p.due > lateSlack || silent && queued) && !p.graced {
		p.graced = true
		p.due = now + p.bound
		return verdictWait, p.due
	}
	if !silent {
		p.due = from + p.bound
		return verdictWait, p.due
	}
	return verdictUnanswered, now - from
}

// fail ends probe gen, judged unanswered, and tells the opens waiting on it;
// nothing if an answer came meanwhile.
func (p *prober) fail(gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent >= 0 && gen == p.gen {
		p.sent = -1
		close(p.lost)
	}
}

// Suspect reports whether the link is under suspicion: the peer was slow to
// answer a stream open and the probe sent then is not answered yet, or it
// has been silent for longer than its PING rhythm or a probe allows (the
// limits learnt by detector.go and the prober) and has not spoken since.
// Route new streams elsewhere while it is, if there is elsewhere: an answer,
// or any frame after such a silence, clears it. Suspicion never closes the
// session; DeadAfter of silence does.
func (s *Session) Suspect() bool {
	return s.probe.suspect() || s.quiet.Load() == s.lastRecv.Load()
}

// Stalled reports whether the peer looks stalled, not merely slow: the
// outstanding probe has gone unanswered, with nothing else heard, for its
// stall bound (OnStall), or a silence was judged suspect and the peer has
// not spoken since. Bytes waiting in the socket for the read loop, which
// this process's load may hold up, are the peer speaking: not stalled.
// Stalled implies Suspect. Route new streams to a link that is only
// Suspect before one that is Stalled: on a loaded machine live peers are
// often probed, and a frozen one should not share their rank.
func (s *Session) Stalled() bool {
	last := s.lastRecv.Load()
	if s.quiet.Load() != last {
		at, ok := s.probe.stallAt(last)
		if !ok || s.now() < at {
			return false
		}
	}
	return !inputQueued(s.sock)
}

// Overdue reports whether the peer has missed its PING: nothing read from
// it for HeartbeatInterval and half again (a live peer sends a PING every
// HeartbeatInterval and answers this side's at once), and no bytes
// waiting in the socket. It judges nothing and sends nothing: the PING
// rhythm's limit, which a loaded machine's jitter widens to seconds,
// decides Suspect, and a probe waits for a stream opened into the
// silence. A caller with somewhere else to go may count it as suspect
// before either.
func (s *Session) Overdue() bool {
	return s.Silent() > s.cfg.HeartbeatInterval*3/2 && !inputQueued(s.sock)
}

// Silent is how long nothing has been read from the peer. Of two links
// both Suspect, or both Stalled, the one silent for less is the likelier
// to answer: a live peer, however slow, sends a PING every
// HeartbeatInterval, and a frozen one's silence only grows.
func (s *Session) Silent() time.Duration {
	return time.Duration(s.now() - s.lastRecv.Load())
}

// quietSince marks the silence that began with the frame read at last as
// suspect (Suspect), until a frame is read after it, and fails the opens
// waiting for an answer meanwhile, but for those told of stalls instead
// (OnStall). why is for the log.
func (s *Session) quietSince(last int64, why string) {
	if s.quiet.Swap(last) == last {
		return
	}
	close(*s.silenced.Swap(new(make(chan struct{}))))
	s.log.Info("link suspect", "silent", time.Duration(s.now()-last).Round(time.Millisecond), "why", why)
}

// suspectAfter is how long an open may go unanswered before the link is
// suspect: twice the smoothed RTT plus HeartbeatInterval/20 for the
// acceptor's own work (25 ms by default).
func (s *Session) suspectAfter() time.Duration {
	return 2*time.Duration(s.rtt.Load()) + s.cfg.HeartbeatInterval/20
}

// waitOpen waits for the peer's answer to the OPEN of st. An OPEN sent into
// a silence already suspectAfter long, or unanswered for that long, makes
// the link suspect and sends a probe. The open fails with
// ErrPeerUnresponsive if that probe goes unanswered, or if the peer's
// silence outlasts its PING rhythm meanwhile: that is when the session used
// to be closed, which took the open elsewhere; now the caller does, and the
// session, with its established streams, lives on until DeadAfter.
// Well before either, the probe's stall bound may pass with nothing heard:
// then ctx's OnStall callback, if any, tells the caller, and the open goes
// on waiting; such an open is not failed by the verdicts either (OnStall).
// silenced is the session's silenced channel from before the OPEN was
// queued.
func (s *Session) waitOpen(ctx context.Context, st *Stream, silenced <-chan struct{}) error {
	var (
		lost     <-chan struct{} // the probe's verdict; nil until one is sent
		stall    clock.Timer     // when to judge a stall again; nil until needed
		stallC   <-chan time.Time
		notified bool // stalled was called
	)
	stalled, _ := ctx.Value(stallKey{}).(func())
	// judgeStall tells stalled once the probe shows a stall, else arms
	// stall for when it might, until the probe is answered. A frame since
	// the probe, or one waiting in the socket for the read loop, is the
	// peer running.
	judgeStall := func() {
		now := s.now()
		at, ok := s.probe.stallAt(s.lastRecv.Load())
		switch {
		case !ok:
			stallC = nil
			return
		case now >= at && !inputQueued(s.sock):
			stallC, notified = nil, true
			stalled()
			return
		case now >= at:
			at = now + int64(s.cfg.HeartbeatInterval)/10 // the read loop's turn
		}
		if stall == nil {
			stall = s.cfg.Clock.NewTimer(time.Duration(at - now))
		} else {
			stall.Reset(time.Duration(at - now))
		}
		stallC = stall.C()
	}
	// A verdict is a stall too: this goroutine, starved, may take it
	// before the stall bound's timer.
	verdict := func() {
		if !notified {
			stallC, notified = nil, true
			stalled()
		}
	}
	probe := func() {
		s.suspect()
		lost = s.probe.pending()
		if stalled != nil && !notified {
			judgeStall()
		}
	}
	defer func() {
		if stall != nil {
			stall.Stop()
		}
	}()
	after := s.suspectAfter()
	if time.Duration(s.now()-s.lastRecv.Load()) > after {
		probe()
	}
	t := s.cfg.Clock.NewTimer(after)
	defer t.Stop()
	for {
		select {
		case <-st.confirmed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
			probe()
		case <-stallC:
			judgeStall()
		case <-lost:
			if stalled == nil {
				return fmt.Errorf("%w: open unanswered, and the probe sent after it too", ErrPeerUnresponsive)
			}
			lost = nil
			verdict()
		case <-silenced:
			if stalled == nil {
				return fmt.Errorf("%w: open unanswered, and the peer silent for longer than its PING rhythm allows", ErrPeerUnresponsive)
			}
			silenced = nil
			verdict()
		}
	}
}

type stallKey struct{}

// OnStall returns a context under which Open calls stalled, at most once
// and from its own goroutine, when the peer looks stalled while the open
// waits for its answer: the probe the open set off (or found outstanding)
// has been unanswered, with nothing else heard from the peer, for its stall
// bound, the 90th percentile of the measured round trips +
// HeartbeatInterval/10, at most HeartbeatInterval/2; far sooner than the
// probe's verdict on a loaded machine, whose round trips vary, and at the
// latest with that verdict or the PING rhythm's. The open goes on waiting,
// and is not failed by those verdicts (ErrPeerUnresponsive) either: the
// caller, told, may try elsewhere meanwhile and cancel it (ctx) if that
// wins, and where there is no elsewhere a peer merely stalled by load
// still gets to answer. It ends with its answer, ctx, or the session
// (DeadAfter). A wrong notice thus costs a second attempt, where a
// wrong verdict would fail the open. stalled must not block.
func OnStall(ctx context.Context, stalled func()) context.Context {
	return context.WithValue(ctx, stallKey{}, stalled)
}

// suspect sends a PROBE unless one is outstanding, and arms its judgement.
func (s *Session) suspect() {
	hb := int64(s.cfg.HeartbeatInterval)
	now := s.now()
	gen, bound, answered, ok := s.probe.start(now, hb/4, hb/50, int64(s.cfg.DeadAfter))
	if !ok {
		return
	}
	f := newCtlFrame(typeProbe, 0, 8)
	binary.BigEndian.PutUint64(f.payload, uint64(now))
	if s.enqueue(f, true) != nil {
		return
	}
	s.log.Debug("link suspect: probing the peer", "bound", time.Duration(bound))
	// The timer starts here, not in the goroutine, so a test stepping a
	// fake clock cannot step past a timer that does not exist yet.
	go s.judgeProbe(gen, s.cfg.Clock.NewTimer(time.Duration(bound)), answered)
}

// judgeProbe waits for probe gen's answer, judging it each time t fires,
// until it is answered, judged unanswered, or the session closes.
func (s *Session) judgeProbe(gen uint64, t clock.Timer, answered <-chan struct{}) {
	defer t.Stop()
	lateSlack := int64(s.cfg.HeartbeatInterval) / 10
	for {
		select {
		case <-s.done:
			return
		case <-answered:
			return
		case <-t.C():
		}
		now, last := s.now(), s.lastRecv.Load()
		v, at := s.probe.judge(gen, now, last, lateSlack, inputQueued(s.sock))
		switch v {
		case verdictWait:
			t.Reset(time.Duration(at - now))
		case verdictUnanswered:
			// Suspect before the probe ends, so that the link never looks
			// clear in between, nor to an open that failed.
			s.quietSince(last, fmt.Sprintf("probe unanswered: nothing received for %v since it was sent, the limit from the measured round trips", time.Duration(at).Round(time.Millisecond)))
			s.probe.fail(gen)
			return
		default:
			return
		}
	}
}

// answerProbe echoes a PROBE's payload in a PONG at once, ahead of stream
// frames, unless the previous answer is still queued.
func (s *Session) answerProbe(b []byte) {
	if s.probe.ack != nil && len(s.probe.ack) == 0 {
		return
	}
	f := newCtlFrame(typePong, 0, 8)
	copy(f.payload, b)
	f.done = make(chan error, 1)
	if s.enqueue(f, true) == nil {
		s.probe.ack = f.done
	}
}
