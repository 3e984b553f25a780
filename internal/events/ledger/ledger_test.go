package ledger

import (
	"fmt"
	"strings"
	"testing"

	"weft.dev/weft/internal/routing"
)

var b, c = routing.SiteID{2}, routing.SiteID{3}

// step runs inputs and returns the outputs as a compact string, then advances.
func step(l *Ledger, in func()) string {
	in()
	rd := l.Ready()
	l.Advance()
	var parts []string
	for _, s := range rd.Sends {
		parts = append(parts, fmt.Sprintf("send %d (%d,%d]", s.Site[0], s.From, s.To))
	}
	for _, id := range []routing.SiteID{b, c} {
		if d, ok := rd.Save[id]; ok {
			parts = append(parts, fmt.Sprintf("save %d acked %d", id[0], d.Acked))
		}
	}
	for _, id := range rd.Delete {
		parts = append(parts, fmt.Sprintf("delete %d", id[0]))
	}
	return strings.Join(parts, "; ")
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

// TestScript walks one destination through interest, sends, acks, an outage
// with redelivery from its cursor, and a restart of the publisher.
func TestScript(t *testing.T) {
	l := New(10, nil, 4)
	expect(t, "interest", step(l, func() { l.Interest(c, []string{"t:x"}) }), "save 3 acked 10")
	expect(t, "append before open", step(l, func() { l.Appended(12) }), "")
	expect(t, "open", step(l, func() { l.Opened(c) }), "send 3 (10,12]")
	expect(t, "append within window", step(l, func() { l.Appended(20) }), "send 3 (12,14]")
	expect(t, "ack frees the window", step(l, func() { l.Acked(c, 12) }), "send 3 (14,16]; save 3 acked 12")
	expect(t, "stale ack", step(l, func() { l.Acked(c, 11) }), "")
	expect(t, "ack past sent is capped", step(l, func() { l.Acked(c, 99) }), "send 3 (16,20]; save 3 acked 16")
	expect(t, "close loses in-flight", step(l, func() { l.Closed(c); l.Appended(21) }), "")
	expect(t, "low is the cursor", fmt.Sprint(l.Low()), "16")
	expect(t, "reopen resends from the cursor", step(l, func() { l.Opened(c) }), "send 3 (16,20]")

	// The publisher restarts: only saved cursors survive.
	l = New(21, l.Dests(), 4)
	expect(t, "after restart", step(l, func() { l.Opened(c) }), "send 3 (16,20]")
	expect(t, "ack to head", step(l, func() { l.Acked(c, 20) }), "send 3 (20,21]; save 3 acked 20")
	expect(t, "interest gone", step(l, func() { l.Interest(c, nil) }), "delete 3")
	expect(t, "low without destinations is head", fmt.Sprint(l.Low()), "21")
	expect(t, "ack from a former destination", step(l, func() { l.Acked(c, 21) }), "")
}

// TestTwoDestinations: cursors are independent, and an unreachable destination
// holds the log back while the other advances.
func TestTwoDestinations(t *testing.T) {
	l := New(0, nil, 100)
	step(l, func() { l.Interest(b, []string{"t:x"}); l.Interest(c, []string{"t:>"}) })
	expect(t, "open b", step(l, func() { l.Opened(b); l.Appended(5) }), "send 2 (0,5]")
	expect(t, "ack b", step(l, func() { l.Acked(b, 5) }), "save 2 acked 5")
	expect(t, "low held by c", fmt.Sprint(l.Low()), "0")
	expect(t, "patterns change", step(l, func() { l.Interest(c, []string{"t:y"}) }), "save 3 acked 0")
	expect(t, "open c", step(l, func() { l.Opened(c) }), "send 3 (0,5]")
	expect(t, "no-op interest", step(l, func() { l.Interest(c, []string{"t:y"}) }), "")
}
