package service

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestRaceScripts runs the race scripts in testdata/race. Regenerate the
// expected output with:
//
//	go test ./internal/service -run TestRaceScripts -rewrite
//
// Commands:
//
//	start [hedge] [retries=N]   a new race; sends the primary
//	answer N VERDICT [status=S] copy N got good|bad|overload|failed|cancelled|retriable
//	no-candidate N              copy N found no candidate
//	timer                       the hedge delay passed
//
// Each prints the actions the race asks for. After every command the
// harness checks the bookkeeping: no copy ends in the balancer twice, none
// is both dropped and delivered, and once the race is over and every
// cancelled copy answered, every copy that ran has ended exactly once.
func TestRaceScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/race", func(t *testing.T, path string) {
		var h *raceHarness
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "start" && h == nil {
				d.Fatalf(t, "%s before start", d.Cmd)
			}
			switch d.Cmd {
			case "start":
				retries := 0
				d.MaybeScanArgs(t, "retries", &retries)
				h = newRaceHarness(newRace(d.HasArg("hedge"), retries))
				h.r.start()
			case "answer":
				args := positionalArgs(d)
				if len(args) != 2 {
					d.Fatalf(t, "answer N VERDICT")
				}
				n := h.copyArg(t, d, args[0])
				v := parseVerdict(t, d, args[1])
				status := defaultStatus[v]
				d.MaybeScanArgs(t, "status", &status)
				var err error
				if v == verdictFailed || v == verdictCancelled {
					err = fmt.Errorf("copy %d %s", n, v)
				}
				h.r.answer(n, v, status, err)
			case "no-candidate":
				args := positionalArgs(d)
				if len(args) != 1 {
					d.Fatalf(t, "no-candidate N")
				}
				h.r.noCandidate(h.copyArg(t, d, args[0]))
			case "timer":
				h.r.timer()
			default:
				d.Fatalf(t, "unknown command %s", d.Cmd)
			}
			out := h.record(t, d)
			if out == "" {
				return "(nothing)\n"
			}
			return out
		})
	})
}

var defaultStatus = map[verdict]int{verdictGood: 200, verdictBad: 500, verdictOverload: 503, verdictRetriable: 200}

func parseVerdict(t *testing.T, d *datadriven.TestData, s string) verdict {
	for v, name := range verdictNames {
		if name == s {
			return verdict(v)
		}
	}
	d.Fatalf(t, "unknown verdict %q", s)
	return 0
}

func positionalArgs(d *datadriven.TestData) []string {
	var out []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			out = append(out, a.Key)
		}
	}
	return out
}

// raceHarness follows what a race asked for, as a driver would, and checks
// that the bookkeeping adds up.
type raceHarness struct {
	r      *race
	copies []harnessCopy // copy n is copies[n-1]
	over   bool
}

type harnessCopy struct {
	ran, ended, dropped, delivered, cancelled, answered bool
}

func newRaceHarness(r *race) *raceHarness { return &raceHarness{r: r} }

func (h *raceHarness) copyArg(t *testing.T, d *datadriven.TestData, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > len(h.copies) {
		d.Fatalf(t, "no copy %q", s)
	}
	if d.Cmd == "answer" {
		c := &h.copies[n-1]
		if !c.ran || c.answered {
			d.Fatalf(t, "copy %d is not waiting for an answer", n)
		}
		c.answered = true
	}
	if d.Cmd == "no-candidate" {
		h.copies[n-1].ran = false
	}
	return n
}

// record prints the pending actions and applies them to the harness's
// view of the copies.
func (h *raceHarness) record(t *testing.T, d *datadriven.TestData) string {
	var b strings.Builder
	fail := func(format string, args ...any) { d.Fatalf(t, format, args...) }
	for _, a := range h.r.take() {
		fmt.Fprintln(&b, a)
		if h.over {
			if a.kind == actLaunch || a.kind == actDeliver || a.kind == actGiveUp {
				fail("%v after the race was over", a)
			}
		}
		if a.kind == actLaunch {
			if a.copy != len(h.copies)+1 {
				fail("launch of copy %d after %d copies", a.copy, len(h.copies))
			}
			h.copies = append(h.copies, harnessCopy{ran: true})
			continue
		}
		if a.kind == actGiveUp {
			h.over = true
			continue
		}
		c := &h.copies[a.copy-1]
		switch a.kind {
		case actCancel:
			if c.answered || c.cancelled {
				fail("cancel of copy %d, which is not running", a.copy)
			}
			c.cancelled = true
		case actEnd:
			if c.ended {
				fail("copy %d ended twice", a.copy)
			}
			c.ended = true
		case actDrop:
			if c.dropped || c.delivered {
				fail("copy %d dropped after it was dropped or delivered", a.copy)
			}
			c.dropped = true
		case actDeliver:
			if c.dropped || c.delivered {
				fail("copy %d delivered after it was dropped or delivered", a.copy)
			}
			c.delivered, h.over = true, true
		}
	}
	if h.over {
		h.checkSettled(fail)
	}
	return b.String()
}

// checkSettled checks, once every cancelled copy answered, that each copy
// that ran ended once, the delivered one possibly when its body closes.
func (h *raceHarness) checkSettled(fail func(string, ...any)) {
	for _, c := range h.copies {
		if c.ran && !c.answered {
			return // a loser still to come
		}
	}
	for i, c := range h.copies {
		if c.ran && !c.ended && !c.delivered {
			fail("copy %d ran but never ended", i+1)
		}
		if c.ran && !c.dropped && !c.delivered {
			fail("copy %d's answer was neither dropped nor delivered", i+1)
		}
	}
}

func TestRaceIgnoresInputsForSettledCopies(t *testing.T) {
	r := newRace(true, 1)
	r.start()
	r.take()
	r.answer(1, verdictGood, 200, nil)
	if got := r.take(); len(got) != 1 || got[0].kind != actDeliver {
		t.Fatalf("good answer: %v", got)
	}
	// The delivered body breaks while streaming: the driver never reports
	// it, and a stray report changes nothing.
	r.answer(1, verdictFailed, 0, errors.New("body broke"))
	r.timer()
	if got := r.take(); len(got) != 0 {
		t.Errorf("inputs after delivery produced %v", got)
	}
}
