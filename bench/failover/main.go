// Command failover measures how long weft takes to route around a serving
// site that goes silent without closing anything (SIGSTOP: no FIN, no RST,
// the kernel still acknowledges TCP), and counts links torn down for
// silence while no site was frozen (false failovers), with CPU hogs loading
// the machine throughout. See bench/README.md, section "Failover from
// silence".
//
// Sites b and c serve address echo (a TCP echo server of the harness at
// each, which greets with its site's name); a links to both and listens for
// echo. Clients at a connect, read the greeting and close, in a loop. Each
// trial freezes b or c (in turn) for -frozen, then lets it go on and waits
// until a reaches it again and has heard enough of its heartbeats to judge
// it (-settle).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
)

type config struct {
	weft    string
	trials  int
	soak    time.Duration
	frozen  time.Duration
	settle  time.Duration
	hogs    int
	workers int
	slow    time.Duration
	extra   string
	logs    string
	verbose bool
}

func main() {
	var c config
	flag.StringVar(&c.weft, "weft", "weft", "weft binary")
	flag.IntVar(&c.trials, "trials", 6, "freezes, alternating b and c")
	flag.DurationVar(&c.soak, "soak", 60*time.Second, "load with no freeze, counting false failovers")
	flag.DurationVar(&c.frozen, "frozen", 4*time.Second, "how long a site stays frozen (above the 2s DeadAfter)")
	flag.DurationVar(&c.settle, "settle", 6*time.Second, "wait after a frozen site is reached again")
	flag.IntVar(&c.hogs, "hogs", 2, "CPU hogs (sh -c 'while :; do :; done') running throughout")
	flag.IntVar(&c.workers, "workers", 4, "client loops at a")
	flag.DurationVar(&c.slow, "slow", 250*time.Millisecond, "a connection that takes longer was held up by the freeze")
	flag.StringVar(&c.extra, "site-args", "", "extra `weft site run` arguments, space separated")
	flag.StringVar(&c.logs, "logs", "", "also write each site's log to `dir`/<site>.log")
	flag.BoolVar(&c.verbose, "v", false, "list each trial's held-up connections")
	flag.Parse()
	cl := &benchproc.Cleanups{}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cl, c)
	stop()
	cl.Run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

// attempt is one client connection through a.
type attempt struct {
	start, end time.Time
	site       string // greeting; "" if it failed
	local      string // the client's address, which a's log calls the stream
}

// recorder keeps every attempt, every link torn down for silence (deaths)
// and every link a site marked suspect for silence (suspicions: weft's
// link layer routes new streams around it, and closes it only after
// DeadAfter).
type recorder struct {
	mu         sync.Mutex
	attempts   []attempt
	deaths     []death
	suspicions []death
	detours    []detour
}

// detour is a candidate that a connection tried and left for another (a's
// debug log: msg="candidate failed" ... candidate=b ... stream=<client>).
type detour struct {
	at                time.Time
	stream, candidate string
}

// death is a log event of one site about its link to peer.
type death struct {
	at         time.Time
	site, peer string
}

func run(ctx context.Context, cl *benchproc.Cleanups, c config) error {
	tmp, err := os.MkdirTemp("", "weft-failover-")
	if err != nil {
		return err
	}
	cl.Add(func() { os.RemoveAll(tmp) })
	rec := &recorder{}
	dirs := map[string]string{}
	procs := map[string]*benchproc.Proc{}
	for _, n := range []string{"a", "b", "c"} {
		dirs[n] = filepath.Join(tmp, n)
		// Debug for a's "candidate failed" lines, a few per freeze.
		args := append([]string{"--log-level", "debug"}, strings.Fields(c.extra)...)
		var tee io.Writer = &logWatch{site: n, rec: rec}
		if c.logs != "" {
			f, err := os.Create(filepath.Join(c.logs, n+".log"))
			if err != nil {
				return err
			}
			cl.Add(func() { f.Close() })
			tee = io.MultiWriter(tee, f)
		}
		p, err := benchproc.StartWeftSite(ctx, cl, c.weft, n, dirs[n], tee, args...)
		if err != nil {
			return err
		}
		// A stopped process ignores SIGTERM: let it go on before cleanups
		// stop it. Registered after the site, so run before its Stop.
		cl.Add(func() { p.Signal(syscall.SIGCONT) })
		procs[n] = p
	}
	for _, n := range []string{"b", "c"} {
		tok := filepath.Join(tmp, "token-"+n+".yaml")
		if _, err := benchproc.WeftCLI(ctx, c.weft, dirs[n], "token", "issue", "--file", tok); err != nil {
			return err
		}
		if _, err := benchproc.WeftCLI(ctx, c.weft, dirs["a"], "link", "create", tok); err != nil {
			return err
		}
		addr, err := benchproc.ServeEcho(cl, n)
		if err != nil {
			return err
		}
		if _, err := benchproc.WeftCLI(ctx, c.weft, dirs[n], "connector", "create", "echo", "--target", addr); err != nil {
			return err
		}
	}
	out, err := benchproc.WeftCLI(ctx, c.weft, dirs["a"], "listener", "create", "echo", "--port", "0", "-o", "json")
	if err != nil {
		return err
	}
	var l struct{ Listen string }
	if err := json.Unmarshal(out, &l); err != nil || l.Listen == "" {
		return fmt.Errorf("listener create answered %q (%v)", out, err)
	}
	for i := range c.hogs {
		if _, err := benchproc.Start(cl, fmt.Sprintf("hog %d", i), "sh", "-c", "while :; do :; done"); err != nil {
			return err
		}
	}
	if err := bothServe(ctx, rec, l.Listen, c.settle); err != nil {
		return err
	}

	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range c.workers {
		wg.Add(1)
		go func() { defer wg.Done(); clientLoop(lctx, rec, l.Listen) }()
	}
	defer func() { stopLoad(); wg.Wait() }()

	fmt.Printf("failover: weft %s, %d hogs, %d client loops, load %s\n", c.weft, c.hogs, c.workers, loadavg())
	soakStart := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(c.soak):
	}
	falseDeaths := rec.deathsIn(soakStart, time.Now(), "")
	fmt.Printf("failover: soak %v with no freeze: %d links torn down for silence (false failovers), %d marked suspect, %d candidates left or raced (failed or stalled) of %d connections\n",
		c.soak, len(falseDeaths), len(rec.suspectIn(soakStart, time.Now(), "")), rec.detoursIn(soakStart, time.Now()), rec.attemptsIn(soakStart, time.Now()))

	var fails, slowest []time.Duration
	for i := range c.trials {
		victim := []string{"b", "c"}[i%2]
		t0 := time.Now()
		if err := procs[victim].Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.frozen):
		}
		end := time.Now()
		if err := procs[victim].Signal(syscall.SIGCONT); err != nil {
			return err
		}
		detect, suspect := "not detected while frozen", "never"
		if d := rec.deathsIn(t0, end, victim); len(d) > 0 {
			detect = d[0].at.Sub(t0).Round(time.Millisecond).String()
		}
		if d := rec.suspectIn(t0, end, victim); len(d) > 0 {
			suspect = d[0].at.Sub(t0).Round(time.Millisecond).String()
		}
		others := len(rec.deathsIn(t0, end, "")) - len(rec.deathsIn(t0, end, victim))
		falseDeaths = append(falseDeaths, make([]death, others)...)
		h := rec.heldUp(t0, end, victim, c.slow)
		fmt.Printf("failover: trial %d, %s frozen %v: a logged it suspect after %s, dead after %s; of the connections begun meanwhile %d went through within %v, %d were held up, the last until %v after the freeze; %d of those had waited on %s (%d failed), the last until %v; load %s\n",
			i+1, victim, c.frozen, suspect, detect, h.prompt, c.slow, h.held, h.last.Round(time.Millisecond),
			h.via, victim, h.failed, h.lastVia.Round(time.Millisecond), loadavg())
		fails = append(fails, h.lastVia)
		slowest = append(slowest, h.last)
		if c.verbose {
			// On the wall clock, to find the freeze in the sites' logs.
			fmt.Printf("failover:   froze %s at %s\n", victim, t0.UTC().Format("15:04:05.000"))
			rec.listHeldUp(t0, end, victim, c.slow)
		}
		if err := bothServe(ctx, rec, l.Listen, c.settle); err != nil {
			return err
		}
	}
	fmt.Printf("failover: SUMMARY failover (last connection held up by the frozen site done, after the freeze) %s over %d trials; last held-up connection of any kind %s; false failovers %d\n",
		spread(fails), len(fails), spread(slowest), len(falseDeaths))
	return nil
}

// spread is the min, median and max of ds, which it sorts.
func spread(ds []time.Duration) string {
	slices.Sort(ds)
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("min %v median %v max %v", r(ds[0]), r(ds[len(ds)/2]), r(ds[len(ds)-1]))
}

// bothServe waits until connections through a reach b and c, then settle
// longer, so that a has measured the heartbeats of both again.
func bothServe(ctx context.Context, rec *recorder, listen string, settle time.Duration) error {
	seen := map[string]bool{}
	err := benchproc.Poll(ctx, 60*time.Second, "echo to be served at b and c", func() error {
		if s, _ := connect(listen, time.Second); s != "" {
			seen[s] = true
		}
		if !seen["b"] || !seen["c"] {
			return fmt.Errorf("served at %v", seen)
		}
		return nil
	})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(settle):
		return nil
	}
}

// clientLoop connects through a until ctx ends, one connection at a time.
func clientLoop(ctx context.Context, rec *recorder, listen string) {
	for ctx.Err() == nil {
		start := time.Now()
		s, local := connect(listen, 10*time.Second)
		rec.mu.Lock()
		rec.attempts = append(rec.attempts, attempt{start: start, end: time.Now(), site: s, local: local})
		rec.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// connect dials listen and returns the greeting's site, or "" on failure,
// and the connection's local address.
func connect(listen string, timeout time.Duration) (site, local string) {
	conn, err := net.DialTimeout("tcp", listen, timeout)
	if err != nil {
		return "", ""
	}
	defer conn.Close()
	local = conn.LocalAddr().String()
	conn.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", local
	}
	return strings.TrimSpace(line), local
}

// heldUp describes the connections that began in [t0, end) while victim
// was frozen: how many went through promptly (within slow), how many were
// held up (took longer, or failed) and how many failed, and how long after
// t0 the last held-up one ended. Of the held-up ones, via are those that
// waited on the frozen site (a's log has them leave it for another
// candidate) or failed, and lastVia when the last of them ended: the
// failover time a client sees. The others were slow on the live site, as
// connections are on a machine this loaded without any freeze.
type heldUp struct {
	prompt, held, failed, via int
	last, lastVia             time.Duration
}

func (r *recorder) heldUp(t0, end time.Time, victim string, slow time.Duration) heldUp {
	r.mu.Lock()
	defer r.mu.Unlock()
	var h heldUp
	for _, a := range r.attempts {
		if a.start.Before(t0) || !a.start.Before(end) {
			continue
		}
		if a.site != "" && a.end.Sub(a.start) <= slow {
			h.prompt++
			continue
		}
		h.held++
		h.last = max(h.last, a.end.Sub(t0))
		if a.site == "" {
			h.failed++
		}
		if a.site == "" || r.detoured(a, victim) {
			h.via++
			h.lastVia = max(h.lastVia, a.end.Sub(t0))
		}
	}
	return h
}

// detoured reports whether a's log has a leave candidate for another while
// it connected; the caller holds mu. A second of slack covers the pipe
// from a's log.
func (r *recorder) detoured(a attempt, candidate string) bool {
	for _, d := range r.detours {
		if d.stream == a.local && d.candidate == candidate && !d.at.Before(a.start) && d.at.Before(a.end.Add(time.Second)) {
			return true
		}
	}
	return false
}

// listHeldUp prints the connections that began in [t0, end) and were held
// up: when each began and ended after t0, where it went, and whether it had
// waited on victim.
func (r *recorder) listHeldUp(t0, end time.Time, victim string, slow time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.attempts {
		if a.start.Before(t0) || !a.start.Before(end) || a.site != "" && a.end.Sub(a.start) <= slow {
			continue
		}
		via := ""
		if r.detoured(a, victim) {
			via = ", had waited on " + victim
		}
		fmt.Printf("failover:   held up: began %v, ended %v after the freeze, at %q%s\n",
			a.start.Sub(t0).Round(time.Millisecond), a.end.Sub(t0).Round(time.Millisecond), a.site, via)
	}
}

// detoursIn counts the candidates connections left or raced in [from, to).
func (r *recorder) detoursIn(from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return countIn(r.detours, func(d detour) time.Time { return d.at }, from, to)
}

// attemptsIn counts the connections begun in [from, to).
func (r *recorder) attemptsIn(from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return countIn(r.attempts, func(a attempt) time.Time { return a.start }, from, to)
}

// countIn counts the xs whose time at is in [from, to).
func countIn[T any](xs []T, at func(T) time.Time, from, to time.Time) int {
	n := 0
	for _, x := range xs {
		if t := at(x); !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// deathsIn returns the links torn down for silence in [from, to), only
// those whose peer is peer unless peer is "".
func (r *recorder) deathsIn(from, to time.Time, peer string) []death {
	return r.eventsIn(&r.deaths, from, to, peer)
}

// suspectIn is deathsIn for the links marked suspect.
func (r *recorder) suspectIn(from, to time.Time, peer string) []death {
	return r.eventsIn(&r.suspicions, from, to, peer)
}

func (r *recorder) eventsIn(events *[]death, from, to time.Time, peer string) []death {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []death
	for _, d := range *events {
		if !d.at.Before(from) && d.at.Before(to) && (peer == "" || d.peer == peer) {
			out = append(out, d)
		}
	}
	return out
}

// logWatch reads a site's text log for links torn down because the peer
// fell silent: level=INFO msg="link down" ... peer=b ... err="link: peer dead ...",
// for links marked suspect: level=INFO msg="link suspect" ... peer=b ...,
// and for candidates a connection left: level=DEBUG msg="candidate failed"
// ... candidate=b ... stream=127.0.0.1:41234, or tried another beside
// because the first stalled: msg="candidate stalled; ...".
type logWatch struct {
	site    string
	rec     *recorder
	partial []byte
}

func (w *logWatch) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := slices.Index(w.partial, '\n')
		if i < 0 {
			break
		}
		l := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		// The time of reading, not the log's: the harness's own clock,
		// within the pipe's delay of the log line.
		now := time.Now()
		events := &w.rec.deaths
		switch {
		case strings.Contains(l, `msg="link down"`) && strings.Contains(l, "peer dead"):
		case strings.Contains(l, `msg="link suspect"`):
			events = &w.rec.suspicions
		case strings.Contains(l, `msg="candidate failed"`), strings.Contains(l, `msg="candidate stalled`):
			w.rec.mu.Lock()
			w.rec.detours = append(w.rec.detours, detour{at: now, stream: attr(l, "stream"), candidate: attr(l, "candidate")})
			w.rec.mu.Unlock()
			continue
		default:
			continue
		}
		w.rec.mu.Lock()
		*events = append(*events, death{at: now, site: w.site, peer: attr(l, "peer")})
		w.rec.mu.Unlock()
	}
	if len(w.partial) > 64<<10 {
		w.partial = w.partial[:0]
	}
	return len(p), nil
}

// attr is the value of key in a text log line, "" if it has none.
func attr(line, key string) string {
	_, v, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:min(3, len(strings.Fields(string(b))))], " ")
}
