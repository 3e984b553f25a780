package ledger

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"weft.dev/weft/internal/siteid"
)

// Sites are named by one letter; the ID's first byte is the letter.
func site(name byte) siteid.ID { return siteid.ID{name} }

var b, c, d, e = site('b'), site('c'), site('d'), site('e')

func names(ids []siteid.ID) string {
	var s []string
	for _, id := range ids {
		s = append(s, string(id[0]))
	}
	return strings.Join(s, ",")
}

// step runs inputs and returns the outputs as a compact string, then advances:
// "send b/1#2 (0,5] c,d" is mark 2 of stream 1 to b, entries (0,5] for c and
// d; "save c 5" a cursor to store, "delete c" one to remove.
func step(l *Ledger, in func()) string {
	in()
	rd := l.Ready()
	l.Advance()
	var parts []string
	for _, s := range rd.Sends {
		parts = append(parts, fmt.Sprintf("send %c/%d#%d (%d,%d] %s", s.Hop[0], s.Stream, s.Mark, s.From, s.To, names(s.Dests)))
	}
	var saved []siteid.ID
	for id := range rd.Save {
		saved = append(saved, id)
	}
	slices.SortFunc(saved, siteid.ID.Compare)
	for _, id := range saved {
		parts = append(parts, fmt.Sprintf("save %c %d", id[0], rd.Save[id].Acked))
	}
	for _, id := range rd.Delete {
		parts = append(parts, fmt.Sprintf("delete %c", id[0]))
	}
	return strings.Join(parts, "; ")
}

// script runs steps: each is an input and the outputs it must produce.
type script []struct {
	what string
	in   func()
	want string
}

func (s script) run(t *testing.T, l *Ledger) {
	t.Helper()
	for _, st := range s {
		if got := step(l, st.in); got != st.want {
			t.Fatalf("%s:\n got %q\nwant %q", st.what, got, st.want)
		}
	}
}

func routes(pairs ...siteid.ID) map[siteid.ID]siteid.ID {
	m := map[siteid.ID]siteid.ID{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

func appended(off uint64, dests ...siteid.ID) []Entry { return []Entry{{Off: off, Dests: dests}} }

// TestOneHopManyDestinations: on the line a-b-c-d, a's entries for c and d
// cross a-b once, and b's acknowledgement moves both cursors.
func TestOneHopManyDestinations(t *testing.T) {
	l := New(10, nil, 4)
	script{
		{"routes", func() { l.Routes(routes(b, b, c, b, d, b)) }, ""},
		{"interests", func() { l.Interest(c, []string{"t:x"}); l.Interest(d, []string{"t:>"}) }, "save c 10; save d 10"},
		{"b is only transit", func() { l.Interest(b, nil) }, ""},
		{"append before open", func() { l.Appended(appended(12, c, d)) }, ""},
		{"open sends once for both", func() { l.Opened(b) }, "send b/1#1 (10,12] c,d"},
		{"window", func() { l.Appended(appended(20, c)) }, "send b/1#2 (12,14] c,d"},
		{"ack frees the window", func() { l.Acked(b, 1, 1) }, "send b/1#3 (14,16] c,d; save c 12; save d 12"},
		{"stale ack", func() { l.Acked(b, 1, 1) }, ""},
		{"ack two marks", func() { l.Acked(b, 1, 3) }, "send b/1#4 (16,20] c,d; save c 16; save d 16"},
		{"close of an older stream changes nothing", func() { l.Closed(b, 0); l.Acked(b, 1, 4) }, "save c 20; save d 20"},
		{"close loses in-flight", func() { l.Closed(b, 1); l.Appended(appended(22, d)) }, ""},
		{"reopen resends from the cursors", func() { l.Opened(b) }, "send b/2#1 (20,22] c,d"},
		{"ack of the old stream", func() { l.Acked(b, 1, 4) }, ""},
	}.run(t, l)
	if got := fmt.Sprint(l.Targets("x"), len(l.Targets("y"))); got != fmt.Sprint([]siteid.ID{c, d}, 1) {
		t.Errorf("targets %s", got)
	}
	if l.Low() != 20 {
		t.Errorf("low %d, want 20", l.Low())
	}

	// The site restarts: only saved cursors survive, and the log is
	// assumed to hold something for each up to head.
	l = New(22, l.Dests(), 4)
	script{
		{"routes after restart", func() { l.Routes(routes(b, b, c, b, d, b)) }, ""},
		{"open", func() { l.Opened(b) }, "send b/1#1 (20,22] c,d"},
		{"ack to head", func() { l.Acked(b, 1, 1) }, "save c 22; save d 22"},
		{"interest gone", func() { l.Interest(c, nil) }, "delete c"},
		{"ack from a former destination", func() { l.Acked(b, 1, 1) }, ""},
	}.run(t, l)
	if l.Low() != 22 {
		t.Errorf("low %d, want head 22", l.Low())
	}
}

// TestRouteChange: a destination moved to another neighbour is sent to from
// its cursor there; an acknowledgement still in flight on the old neighbour
// counts, because that neighbour forwards what it stored.
func TestRouteChange(t *testing.T) {
	l := New(0, nil, 100)
	script{
		{"setup", func() {
			l.Routes(routes(b, b, c, b, d, b, e, e))
			l.Interest(c, []string{"t:x"})
			l.Interest(d, []string{"t:x"})
			l.Opened(b)
			l.Opened(e)
		}, "save c 0; save d 0"},
		{"append", func() { l.Appended(appended(5, c, d)) }, "send b/1#1 (0,5] c,d"},
		{"ack", func() { l.Acked(b, 1, 1) }, "save c 5; save d 5"},
		{"more", func() { l.Appended(appended(8, c, d)) }, "send b/1#2 (5,8] c,d"},
		{"d now via e: resent from its cursor", func() { l.Routes(routes(b, b, c, b, d, e, e, e)) }, "send e/1#1 (5,8] d"},
		{"b acks after all", func() { l.Acked(b, 1, 2) }, "save c 8; save d 8"},
		{"e's ack adds nothing", func() { l.Acked(e, 1, 1) }, ""},
		{"next entries split by hop", func() { l.Appended(appended(9, c, d)) }, "send b/1#3 (8,9] c; send e/1#2 (8,9] d"},
		{"d unreachable", func() { l.Routes(routes(b, b, c, b, e, e)) }, ""},
		{"entries wait for d", func() { l.Appended(appended(10, c, d)) }, "send b/1#4 (9,10] c"},
		{"b acks c", func() { l.Acked(b, 1, 4) }, "save c 10"},
	}.run(t, l)
	if l.Low() != 8 {
		t.Errorf("low %d, want d's cursor 8 (e never acknowledged 9)", l.Low())
	}
	script{
		{"d back via b: alone until it catches up", func() { l.Routes(routes(b, b, c, b, d, b, e, e)) }, "send b/1#5 (8,10] d"},
		{"then with c again", func() { l.Appended(appended(11, c, d)) }, "send b/1#6 (10,11] c,d"},
	}.run(t, l)
}

// TestQueueRouteChange: a queue's destination moved while entries for it are
// in flight waits for the old stream: acknowledged there, they are not sent
// to a second consumer site; lost with the stream, they are sent again.
func TestQueueRouteChange(t *testing.T) {
	q := site('q')
	l := New(0, nil, 100)
	script{
		{"setup", func() {
			l.Routes(routes(b, b, c, c, q, b))
			l.Interest(q, []string{"q:jobs"})
			l.Opened(b)
			l.Opened(c)
		}, "save q 0"},
		{"append", func() { l.Appended(appended(5, q)) }, "send b/1#1 (0,5] q"},
		{"q now via c: nothing resent", func() { l.Routes(routes(b, b, c, c, q, c)) }, ""},
		{"new entries wait", func() { l.Appended(appended(8, q)) }, ""},
	}.run(t, l)
	if got := names(l.Hops()); got != "b,c" {
		t.Errorf("hops %s, want b,c: b's stream must stay open", got)
	}
	script{
		{"b acks: c goes on from there", func() { l.Acked(b, 1, 1) }, "send c/1#1 (5,8] q; save q 5"},
		{"c acks", func() { l.Acked(c, 1, 1) }, "save q 8"},
		{"more", func() { l.Appended(appended(10, q)) }, "send c/1#2 (8,10] q"},
		{"q via b while c has them", func() { l.Routes(routes(b, b, c, c, q, b)) }, ""},
		{"c's stream ends: sent again via b", func() { l.Closed(c, 1) }, "send b/1#2 (8,10] q"},
		{"more", func() { l.Appended(appended(11, q)) }, "send b/1#3 (10,11] q"},
		{"q via c and back to b: b goes on", func() {
			l.Routes(routes(b, b, c, c, q, c))
			l.Routes(routes(b, b, c, c, q, b))
			l.Appended(appended(12, q))
		}, "send b/1#4 (11,12] q"},
		{"b acks all", func() { l.Acked(b, 1, 4) }, "save q 12"},
	}.run(t, l)
}

// TestLaggingJoins: a destination behind the others is sent to alone only up
// to where they are, within the window.
func TestLaggingJoins(t *testing.T) {
	l := New(0, nil, 5)
	script{
		{"c ahead", func() {
			l.Routes(routes(b, b, c, b))
			l.Interest(c, []string{"t:x"})
			l.Opened(b)
			l.Appended(appended(3, c))
			l.Acked(b, 1, 1)
		}, "send b/1#1 (0,3] c; save c 3"},
		{"d appears behind", func() {
			l.Routes(routes(b, b, c, b, d, b))
			l.Appended([]Entry{{Off: 1, Dests: []siteid.ID{d}}, {Off: 6, Dests: []siteid.ID{c, d}}})
		}, "send b/1#2 (0,3] d; send b/1#3 (3,5] c,d; save d 0"},
		{"window full until acks", func() { l.Acked(b, 1, 2) }, "send b/1#4 (5,6] c,d; save d 3"},
	}.run(t, l)
}

// TestTransit: a site that forwards gets cursors with the entries, holds its
// log for them while they lag, and drops them once they have everything.
func TestTransit(t *testing.T) {
	l := New(0, nil, 100)
	script{
		{"routes", func() { l.Routes(routes(c, c, d, c)); l.Opened(c) }, ""},
		{"entries create cursors", func() {
			l.Appended([]Entry{{Off: 1, Dests: []siteid.ID{d}}, {Off: 2, Dests: []siteid.ID{c, d}}})
		}, "send c/1#1 (0,1] d; send c/1#2 (1,2] c,d; save c 1; save d 0"},
	}.run(t, l)
	if l.Low() != 0 {
		t.Errorf("low %d, want 0", l.Low())
	}
	script{
		{"acked: nothing left for either", func() { l.Acked(c, 1, 2) }, "delete c; delete d"},
	}.run(t, l)
	if l.Low() != 2 || len(l.Hops()) != 0 {
		t.Errorf("low %d hops %v", l.Low(), l.Hops())
	}
}

// TestAppendedOutOfOrder: two concurrent appends reported in the wrong order
// must not let the later one's new cursor skip the earlier entry.
func TestAppendedOutOfOrder(t *testing.T) {
	l := New(4, nil, 100)
	script{
		{"open", func() { l.Routes(routes(c, c)); l.Opened(c) }, ""},
		{"6 first", func() { l.Appended(appended(6, c)) }, "send c/1#1 (5,6] c; save c 5"},
		{"then 5", func() { l.Appended(appended(5, c)) }, "send c/1#2 (4,6] c; save c 4"},
		{"the first send's ack vouches for nothing", func() { l.Acked(c, 1, 1) }, ""},
		{"the second's does", func() { l.Acked(c, 1, 2) }, "delete c"},
	}.run(t, l)
}
