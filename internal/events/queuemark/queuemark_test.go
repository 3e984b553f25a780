package queuemark

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScripts runs the scripts in testdata. Regenerate the expected output
// with: go test ./internal/events/queuemark -run TestScripts -rewrite
//
// Commands (a batch is named for the steps that follow):
//
//	new high=N low=N                    fresh bookkeeping
//	reserve batch=B entries=(Q,Q,...)   a batch's entries by queue: "take" or "over" for each
//	stored batch=B [kept=(Q,...)]       the entries the store kept of B; none: it failed
//	taken queue=Q [n=N]                 N entries (default 1) handed out or passed on
//	found queue=Q n=N                   N entries waiting from before a restart
//	state                               every queue's counts
//
// After each command the queues that flipped are listed ("withdraw q",
// "announce q"), as the broker would re-announce its interests, and Advance
// is called.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var m *Marks
		batches := map[string]Reservation{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "new" && m == nil {
				t.Fatalf("%s: no 'new' yet", d.Pos)
			}
			var batch, queue string
			var queues []string
			n := 1
			for _, a := range []struct {
				key string
				to  any
			}{{"batch", &batch}, {"queue", &queue}, {"entries", &queues}, {"kept", &queues}, {"n", &n}} {
				if d.HasArg(a.key) {
					d.ScanArgs(t, a.key, a.to)
				}
			}
			var out []string
			switch d.Cmd {
			case "new":
				var high, low int
				d.ScanArgs(t, "high", &high)
				d.ScanArgs(t, "low", &low)
				m = New(high, low)
			case "reserve":
				res, over := m.Reserve(queues)
				batches[batch] = res
				var what []string
				for i, q := range queues {
					what = append(what, q+":"+map[bool]string{false: "take", true: "over"}[over[i]])
				}
				out = append(out, strings.Join(what, " "))
			case "stored":
				res, ok := batches[batch]
				if !ok {
					t.Fatalf("%s: no batch %s", d.Pos, batch)
				}
				delete(batches, batch)
				m.Stored(res, queues)
			case "taken":
				for range n {
					m.Taken(queue)
				}
			case "found":
				m.Found(queue, n)
			case "state":
				for _, q := range m.Queues() {
					w, r := m.Counts(q)
					s := fmt.Sprintf("%s waiting=%d reserved=%d", q, w, r)
					if m.Full(q) {
						s += " full"
					}
					out = append(out, s)
				}
				if len(out) == 0 {
					out = append(out, "empty")
				}
			default:
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			}
			for _, f := range m.Ready() {
				out = append(out, map[bool]string{true: "withdraw ", false: "announce "}[f.Full]+f.Queue)
			}
			m.Advance()
			if len(out) == 0 {
				return "ok\n"
			}
			return strings.Join(out, "\n") + "\n"
		})
	})
}

// TestNoDriftUnderRaces: a worker that hands out each entry before the
// store that wrote it counts it, batch after batch, leaves the count at zero
// and the queue announced, however many times it happens.
func TestNoDriftUnderRaces(t *testing.T) {
	m := New(4, 1)
	for range 1000 {
		res, over := m.Reserve([]string{"q", "q"})
		if over[0] || over[1] {
			t.Fatalf("an empty queue overflowed: %v", over)
		}
		m.Taken("q")
		m.Taken("q")
		m.Stored(res, []string{"q", "q"})
	}
	if w, r := m.Counts("q"); w != 0 || r != 0 || m.Full("q") || len(m.Ready()) != 0 {
		t.Errorf("after 1000 racing batches: waiting %d, reserved %d, full %v, flips %v", w, r, m.Full("q"), m.Ready())
	}
	if len(m.Queues()) != 0 {
		t.Errorf("an empty queue is still kept: %v", m.Queues())
	}
}

// TestFlipBackCancels: a queue that becomes full and drains again before
// the caller announced either change needs no announcement.
func TestFlipBackCancels(t *testing.T) {
	m := New(2, 0)
	m.Found("q", 2)
	m.Taken("q")
	m.Taken("q")
	if rd := m.Ready(); len(rd) != 0 {
		t.Errorf("full and back before Advance: Ready = %v, want nothing", rd)
	}
	m.Found("q", 2)
	if rd := m.Ready(); len(rd) != 1 || rd[0] != (Flip{Queue: "q", Full: true}) {
		t.Errorf("Ready = %v, want q full", rd)
	}
}
