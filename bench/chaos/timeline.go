package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// timeline is what happened to the network, with times: what the harness
// did (kills, restarts), links the sites tore down because a peer fell
// silent, and when the client's site's view of the network matched the
// sites running. A failed request or connection is put in its class from
// it once the run is over, so that events learnt late (a site's log line)
// count too.
type timeline struct {
	mu         sync.Mutex
	up         []string // sites running and ready
	restarting bool     // a killed site is being started again
	kills      []time.Time
	readies    []time.Time
	// deaths are links torn down for missed heartbeats, by the time the
	// site logged it; deathNotes describe the first few.
	deaths     []time.Time
	deathNotes []string
	// changes are kills, restarts begun, restarts ready and deaths.
	changes []time.Time
	// matches are the times of reads of the client's site's view that
	// matched up, taken when the read began.
	matches []time.Time
	// stalls are the times the harness itself got no CPU for a while.
	stalls []string
}

func newTimeline(up []string) *timeline {
	return &timeline{up: slices.Clone(up), changes: []time.Time{time.Now()}}
}

// failure classes.
const (
	// failDied: a site was killed, or a link torn down for missed
	// heartbeats, while the attempt was under way; it may have been on
	// its path.
	failDied = iota
	// failUnconverged: the attempt began after a change that the client's
	// site had not yet seen.
	failUnconverged
	// failConverged: the attempt began while the client's site's table
	// matched the running sites, and no path died before it ended. The
	// goal is none of these.
	failConverged
	nClasses
)

var classNames = [nClasses]string{"open when a path died", "new before convergence", "new after convergence"}

// killing must be called before the site is killed, so that an attempt
// that fails at the kill began before it.
func (tl *timeline) killing(name string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	now := time.Now()
	tl.up = slices.DeleteFunc(tl.up, func(n string) bool { return n == name })
	tl.kills = append(tl.kills, now)
	tl.changes = append(tl.changes, now)
}

// restart must be called before a killed site is started again: from then
// on the client's site's table may change, and it has not converged until
// it shows the site back.
func (tl *timeline) restart() {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.restarting = true
	tl.changes = append(tl.changes, time.Now())
}

// ready records that a restarted site is running again.
func (tl *timeline) ready(name string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	now := time.Now()
	tl.up = append(tl.up, name)
	tl.restarting = false
	tl.readies = append(tl.readies, now)
	tl.changes = append(tl.changes, now)
}

// linkDied records a link that a site tore down at t because its peer fell
// silent.
func (tl *timeline) linkDied(t time.Time, note string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.deaths = append(tl.deaths, t)
	tl.changes = append(tl.changes, t)
	if len(tl.deathNotes) < maxSamples {
		tl.deathNotes = append(tl.deathNotes, note)
	}
}

// stalled records that the harness got no CPU for gap before now.
func (tl *timeline) stalled(gap time.Duration) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.stalls = append(tl.stalls, fmt.Sprintf("%s for %v", clock(time.Now().Add(-gap)), gap.Round(time.Millisecond)))
}

// expect returns the running sites, for a read of the client's site's view
// that begins now.
func (tl *timeline) expect() (up []string, restarting bool, at time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.up), tl.restarting, time.Now()
}

// matched records that the view read from at on, expected to be up,
// matched.
func (tl *timeline) matched(at time.Time, restarting bool) {
	if restarting {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.matches = append(tl.matches, at)
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

// history is the timeline at the end of a run, sorted, to classify
// failures with.
type history struct {
	kills, readies, deaths, changes, matches []time.Time
	deathNotes, stalls                       []string
}

func (tl *timeline) history() history {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	h := history{
		kills: slices.Clone(tl.kills), readies: slices.Clone(tl.readies), deaths: slices.Clone(tl.deaths),
		changes: slices.Clone(tl.changes), matches: slices.Clone(tl.matches),
		deathNotes: slices.Clone(tl.deathNotes), stalls: slices.Clone(tl.stalls),
	}
	for _, ts := range [][]time.Time{h.kills, h.readies, h.deaths, h.changes, h.matches} {
		slices.SortFunc(ts, time.Time.Compare)
	}
	return h
}

// within reports whether some time of ts lies in [from, to].
func within(ts []time.Time, from, to time.Time) bool {
	i, _ := slices.BinarySearchFunc(ts, from, time.Time.Compare)
	return i < len(ts) && !ts[i].After(to)
}

// classify puts the failure of an attempt made from start to end in its
// class.
func (h history) classify(start, end time.Time) int {
	if within(h.kills, start, end) || within(h.deaths, start, end) {
		return failDied
	}
	// The last change before the attempt, and whether the view matched
	// after it and before the attempt began.
	i, _ := slices.BinarySearchFunc(h.changes, start, time.Time.Compare)
	if i > 0 && !within(h.matches, h.changes[i-1], start) {
		return failUnconverged
	}
	return failConverged
}

// settle describes how long after each kill and restart the client's site's
// view matched again.
func (h history) settle() string {
	var d []time.Duration
	for _, c := range append(slices.Clone(h.kills), h.readies...) {
		if i, _ := slices.BinarySearchFunc(h.matches, c, time.Time.Compare); i < len(h.matches) {
			d = append(d, h.matches[i].Sub(c))
		}
	}
	if len(d) == 0 {
		return "no kill or restart seen"
	}
	slices.Sort(d)
	return fmt.Sprintf("%s saw %d kills and restarts after median %v, max %v", clientSite, len(d),
		d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
}

// deathWatch reads a site's log as it is written and records, in tl, each
// link the site tears down because its peer fell silent: a SIGKILL closes
// sockets and never shows up so, but a machine that starves the sites of
// CPU for longer than --dead-after does, and fails what crossed those
// links as surely as a kill.
type deathWatch struct {
	site    string
	tl      *timeline
	partial []byte
}

func (w *deathWatch) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	// A line longer than this is no log line of interest.
	if len(w.partial) > 64<<10 {
		w.partial = w.partial[:0]
	}
	return len(p), nil
}

// line looks for weft's text log line of a link torn down for missed
// heartbeats: time=... level=INFO msg="link down" ... err="link: peer dead: ...".
func (w *deathWatch) line(l string) {
	if !strings.Contains(l, `msg="link down"`) || !strings.Contains(l, "peer dead") {
		return
	}
	ts, ok := strings.CutPrefix(l, "time=")
	if !ok {
		return
	}
	ts, _, _ = strings.Cut(ts, " ")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return
	}
	peer := ""
	if _, p, ok := strings.Cut(l, " peer="); ok {
		peer, _, _ = strings.Cut(p, " ")
	}
	silent := ""
	if _, s, ok := strings.Cut(l, "(silent for "); ok {
		silent, _, _ = strings.Cut(s, ")")
	}
	w.tl.linkDied(t, fmt.Sprintf("%s %s-%s (peer silent for %s)", clock(t), w.site, peer, silent))
}

// clock is how reports show a time: as the sites' logs do, in UTC.
func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }
