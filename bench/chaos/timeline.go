package main

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// timeline is what the harness has done to the network and whether the
// client's site has caught up with it, so that a failed request or
// connection can be put in one of the classes below.
type timeline struct {
	mu sync.Mutex
	up []string // sites running and ready
	// kills counts the kills so far; epoch every change (a kill, a restart
	// begun, a restart ready).
	kills, epoch int
	// converged: the client's site's view matched up after the last change.
	converged bool
	// restarting: a killed site is being started; its return to the
	// client's site's table is not convergence until it is ready.
	restarting bool
	changed    time.Time
	// flaps are the client's site's views that stopped matching when
	// nothing had changed.
	flaps []string
	// settle is, per change, how long the client's site took to see it.
	settle []time.Duration
}

func newTimeline(up []string) *timeline {
	return &timeline{up: slices.Clone(up), changed: time.Now()}
}

// failure classes.
const (
	// failKilled: a site was killed while the attempt was under way; it may
	// have been on its path.
	failKilled = iota
	// failUnconverged: the attempt began after a change that the client's
	// site had not yet seen.
	failUnconverged
	// failConverged: the attempt began while the client's site's table
	// matched the running sites, and no site was killed before it ended.
	// The goal is none of these.
	failConverged
	nClasses
)

var classNames = [nClasses]string{"open on a killed path", "new before convergence", "new after convergence"}

// mark is the state at the start of an attempt.
type mark struct {
	kills     int
	converged bool
}

func (tl *timeline) mark() mark {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return mark{tl.kills, tl.converged}
}

// classify puts the failure of an attempt begun at m in its class.
func (tl *timeline) classify(m mark) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	switch {
	case tl.kills != m.kills:
		return failKilled
	case !m.converged:
		return failUnconverged
	default:
		return failConverged
	}
}

// killing must be called before the site is killed, so that an attempt
// that fails at the kill sees it.
func (tl *timeline) killing(name string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.up = slices.DeleteFunc(tl.up, func(n string) bool { return n == name })
	tl.kills++
	tl.changeLocked()
}

// restart must be called before a killed site is started again: from
// then on the client's site's table may change.
func (tl *timeline) restart() {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.restarting = true
	tl.changeLocked()
}

// ready records that a restarted site is running again.
func (tl *timeline) ready(name string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.up = append(tl.up, name)
	tl.restarting = false
	tl.changeLocked()
}

func (tl *timeline) changeLocked() {
	tl.epoch++
	tl.converged = false
	tl.changed = time.Now()
}

// expect returns the running sites and the epoch they belong to, for a
// check of the client's site's view.
func (tl *timeline) expect() (up []string, epoch int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.up), tl.epoch
}

// matched records that the client's site's view, read after expect
// returned epoch, matched: converged, unless something changed since.
func (tl *timeline) matched(epoch int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if epoch != tl.epoch || tl.converged || tl.restarting {
		return
	}
	tl.converged = true
	tl.settle = append(tl.settle, time.Since(tl.changed))
}

// differed records that the client's site's view, read after expect
// returned epoch, did not match: a table that moves when no site did is
// worth reporting, and it is not converged.
func (tl *timeline) differed(epoch int, how string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if epoch != tl.epoch || !tl.converged {
		return
	}
	tl.converged = false
	tl.changed = time.Now()
	tl.flaps = append(tl.flaps, fmt.Sprintf("%s %s", time.Now().Format("15:04:05.000"), how))
}

func (tl *timeline) flapped() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.flaps)
}

func (tl *timeline) down() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []string
	for _, n := range siteNames {
		if !slices.Contains(tl.up, n) {
			out = append(out, n)
		}
	}
	return out
}

// settleSummary describes how long the client's site took to see changes.
func (tl *timeline) settleSummary() string {
	tl.mu.Lock()
	d := slices.Clone(tl.settle)
	tl.mu.Unlock()
	if len(d) == 0 {
		return "no change seen"
	}
	slices.Sort(d)
	return fmt.Sprintf("%d changes seen by %s, after median %v, max %v", len(d), clientSite,
		d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
}
