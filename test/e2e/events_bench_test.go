package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchLine finds the line of `weft bench` output named name ("pub",
// "sub", "sub[1]", ...) and returns its fields.
func benchLine(t *testing.T, out, name string) map[string]string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != name {
			continue
		}
		m := map[string]string{}
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				t.Fatalf("%s: field %q is not key=value in %q", name, f, line)
			}
			m[k] = v
		}
		return m
	}
	t.Fatalf("no %q line in:\n%s", name, out)
	return nil
}

// wantFigures checks that a bench line counts msgs events with none missing
// or refused, and that its rate and latencies parse and are positive.
func wantFigures(t *testing.T, name string, m map[string]string, msgs int) {
	t.Helper()
	if m["msgs"] != strconv.Itoa(msgs) || m["missing"] != "0" || m["refused"] != "0" {
		t.Errorf("%s: msgs=%s missing=%s refused=%s, want %d, 0, 0", name, m["msgs"], m["missing"], m["refused"], msgs)
	}
	for _, k := range []string{"msgs/s", "MiB/s", "secs"} {
		if v, err := strconv.ParseFloat(m[k], 64); err != nil || v <= 0 {
			t.Errorf("%s: %s=%q, want a number above 0", name, k, m[k])
		}
	}
	for _, k := range []string{"p50", "p90", "p99", "max"} {
		if d, err := time.ParseDuration(m[k]); err != nil || d <= 0 {
			t.Errorf("%s: %s=%q, want a duration above 0", name, k, m[k])
		}
	}
}

// TestEventsBench: `weft bench sub` at b and `weft bench pub` at a, over a
// link, volatile and persisted: the publishers' acknowledged count and each
// subscriber's received count match what was asked, and the figures parse.
func TestEventsBench(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	a.linkTo(b)
	a.weft("topic", "create", "bench.p", "--delivery", "persisted")
	const msgs = 3000
	for _, subject := range []string{"bench.v", "bench.p"} {
		t.Run(subject, func(t *testing.T) {
			out, cmd, done := b.startCLI(t, nil, "bench", "sub", subject, "--msgs", strconv.Itoa(msgs), "--subs", "2", "--idle", "10s")
			waitFor(t, 15*time.Second, "the bench subscriptions", func() bool { return strings.Contains(out.String(), "subscribed to "+subject) })
			// The bench's subscribers count only its own events: the
			// probes tell when b's interest has reached a.
			probe(t, a, "/v1/topics/"+subject, b.subscribeSSE(t, "/v1/topics/"+subject))
			pub := a.weft("bench", "pub", subject, "--msgs", strconv.Itoa(msgs), "--size", "256", "--pubs", "2", "--batch", "50")
			wantFigures(t, "pub", benchLine(t, pub, "pub"), msgs)
			wantFigures(t, "pub[1]", benchLine(t, pub, "pub[1]"), msgs/2)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("weft bench sub did not end:\n%s", out)
			}
			if cmd.ProcessState.ExitCode() != 0 {
				t.Fatalf("weft bench sub failed:\n%s", out)
			}
			wantFigures(t, "sub", benchLine(t, out.String(), "sub"), 2*msgs)
			wantFigures(t, "sub[2]", benchLine(t, out.String(), "sub[2]"), msgs)
			if m := benchLine(t, out.String(), "sub"); m["MiB/s"] == "" || !regexp.MustCompile(`^[0-9.]+$`).MatchString(m["MiB/s"]) {
				t.Errorf("sub MiB/s %q", m["MiB/s"])
			}
		})
	}
}

// TestEventsBenchCredential: where the event API needs a credential,
// `weft bench pub` is let in as `weft publish` is: refused without one and
// outside its patterns, served inside them.
func TestEventsBenchCredential(t *testing.T) {
	a := startSite(t, "a", "--events-auth", "on")
	if out, err := a.try("bench", "pub", "bench.x", "--msgs", "10"); err == nil || !strings.Contains(out, "Unauthorized") {
		t.Errorf("without a credential: %v\n%s", err, out)
	}
	secret := strings.SplitN(a.weft("credential", "create", "bench", "--publish", "bench.>"), "\n", 2)[0]
	if out, err := a.try("bench", "pub", "other", "--msgs", "10", "--credential", secret); err == nil || !strings.Contains(out, "Forbidden") {
		t.Errorf("outside the credential's patterns: %v\n%s", err, out)
	}
	out := a.weft("bench", "pub", "bench.x", "--msgs", "100", "--batch", "10", "--credential", secret)
	wantFigures(t, "pub", benchLine(t, out, "pub"), 100)
}
