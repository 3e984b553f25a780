package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// siteID is the ID of the site named name, as s sees it.
func (s *site) siteID(name string) string {
	s.t.Helper()
	for _, x := range s.status().Sites {
		if x.Name == name {
			return x.ID
		}
	}
	s.t.Fatalf("%s does not see %s", s.name, name)
	return ""
}

// TestEventsPersistedOncePerLink: on the line A-B-C-D, a persisted topic
// published at A with subscribers at C and D: each gets every event once and
// in order, and every link carries each event once, although two
// destinations lie beyond A-B and B-C.
func TestEventsPersistedOncePerLink(t *testing.T) {
	a, b, c, d := startSite(t, "a"), startSite(t, "b"), startSite(t, "c"), startSite(t, "d")
	a.linkTo(b)
	b.linkTo(c)
	c.linkTo(d)
	a.weft("topic", "create", "fan", "--delivery", "persisted")
	sc, sd := newSink(t, func(string, int) int { return 0 }), newSink(t, func(string, int) int { return 0 })
	c.weft("subscription", "create", "s", "--topic", "fan", "--sink", sc.url)
	d.weft("subscription", "create", "s", "--topic", "fan", "--sink", sd.url)
	has := func(s *sink, id string) bool { return slices.Contains(s.got(), id) }
	n := 0
	waitFor(t, 15*time.Second, "c's and d's interest to reach a", func() bool {
		n++
		a.publishBatch("/v1/topics/fan", []ce{{ID: fmt.Sprint("probe-", n), Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}})
		return len(sc.got()) > 0 && len(sd.got()) > 0
	})
	// A sends its log in order: once a fence arrives at both, every earlier
	// probe has been counted.
	a.publishBatch("/v1/topics/fan", []ce{{ID: "fence", Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}})
	waitFor(t, 15*time.Second, "the fence at c and d", func() bool { return has(sc, "fence") && has(sd, "fence") })

	frames := "weft_events_persisted_frames_total"
	ab, bc, cd := fmt.Sprintf("neighbour=%q", a.siteID("b")), fmt.Sprintf("neighbour=%q", b.siteID("c")), fmt.Sprintf("neighbour=%q", c.siteID("d"))
	ab0, bc0, cd0 := a.metric(frames, ab), b.metric(frames, bc), c.metric(frames, cd)

	const total, per = 1000, 100
	for i := 0; i < total; i += per {
		if code, body := a.publishBatch("/v1/topics/fan", batch("e", "/pub", i, per)); code != 202 {
			t.Fatalf("publish %d: %d %s", i, code, body)
		}
	}
	events := func(s *sink) []string {
		var out []string
		for _, id := range s.got() {
			if !strings.HasPrefix(id, "probe") && id != "fence" {
				out = append(out, id)
			}
		}
		return out
	}
	waitFor(t, 30*time.Second, "every event at c and d", func() bool { return len(events(sc)) >= total && len(events(sd)) >= total })
	for who, s := range map[string]*sink{"c": sc, "d": sd} {
		ids := events(s)
		wantExactlyOnce(t, who, ids, total)
		for i, id := range ids {
			if id != fmt.Sprint(i) {
				t.Fatalf("%s: event %d is %s: order broken", who, i, id)
			}
		}
	}
	for link, got := range map[string]float64{"a-b": a.metric(frames, ab) - ab0, "b-c": b.metric(frames, bc) - bc0, "c-d": c.metric(frames, cd) - cd0} {
		if got != total {
			t.Errorf("%s carried %v persisted frames for %d events", link, got, total)
		}
	}
}

// TestEventsPersistedQueue: on the line A-B-C, a persisted queue published
// at A with push consumers at B and C. B is the nearest and takes the events
// until its subscription is deleted; then they go on to C, and so does what
// was still queued at B. Each of 1,000 events reaches one of them; none is
// lost while B is SIGKILLed and restarted midway (a redelivery after the kill
// is at least once, so ids are counted once).
func TestEventsPersistedQueue(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(b)
	b.linkTo(c)
	a.weft("queue", "create", "jobs", "--delivery", "persisted")
	sb, sc := newSink(t, func(string, int) int { return 0 }), newSink(t, func(string, int) int { return 0 })
	b.weft("subscription", "create", "w", "--queue", "jobs", "--sink", sb.url, "--backoff-delay", "50ms")
	c.weft("subscription", "create", "w", "--queue", "jobs", "--sink", sc.url, "--backoff-delay", "50ms")
	n := 0
	waitFor(t, 15*time.Second, "a consumer's interest to reach a", func() bool {
		n++
		if code, body := a.publishBatch("/v1/queues/jobs", []ce{{ID: fmt.Sprint("probe-", n), Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}}); code != 202 {
			t.Fatalf("publish a probe: %d %s", code, body)
		}
		return len(sb.got())+len(sc.got()) > 0
	})

	const total, per = 1000, 50
	published := 0
	for i := 0; i < total; i += per {
		if code, body := a.publishBatch("/v1/queues/jobs", batch("job", "/pub", i, per)); code != 202 {
			t.Fatalf("publish %d: %d %s", i, code, body)
		}
		published += per
		switch published {
		case total / 2:
			b.stop(syscall.SIGKILL)
			b.start()
		case total * 3 / 4:
			b.weft("subscription", "delete", "w")
		}
	}
	var got map[string]int
	waitFor(t, 60*time.Second, "every job at b or c", func() bool {
		got = map[string]int{}
		for _, id := range append(sb.got(), sc.got()...) {
			if !strings.HasPrefix(id, "probe") {
				got[id]++
			}
		}
		return len(got) == total
	})
	for i := range total {
		if got[fmt.Sprint(i)] == 0 {
			t.Errorf("job %d never arrived", i)
		}
	}
	redelivered := 0
	for _, k := range got {
		redelivered += k - 1
	}
	if len(sb.got()) == 0 || len(sc.got()) == 0 {
		t.Errorf("b took %d, c %d: both should have had some", len(sb.got()), len(sc.got()))
	}
	t.Logf("b took %d, c %d, %d redeliveries", len(sb.got()), len(sc.got()), redelivered)
}

// TestEventsPersistedKilled: in each --events-sync mode, the publishing site
// A is SIGKILLed right after it acknowledged a batch (before it can have
// forwarded much of it), and later B, the subscriber's site, while it
// receives; both are restarted. Every event A acknowledged reaches B's
// subscription. The interval is an hour, so in interval mode nothing is
// fsynced during the test: what the acknowledgement promises through a kill
// is the write to the file alone.
func TestEventsPersistedKilled(t *testing.T) {
	for _, mode := range []string{"always", "interval"} {
		t.Run(mode, func(t *testing.T) {
			flags := []string{"--events-sync", mode, "--events-sync-interval", "1h"}
			a, b := startSite(t, "a", flags...), startSite(t, "b", flags...)
			a.linkTo(b)
			a.weft("topic", "create", "k", "--delivery", "persisted")
			sb := newSink(t, func(string, int) int { return 0 })
			b.weft("subscription", "create", "s", "--topic", "k", "--sink", sb.url)
			n := 0
			waitFor(t, 15*time.Second, "b's interest to reach a", func() bool {
				n++
				a.publishBatch("/v1/topics/k", []ce{{ID: fmt.Sprint("probe-", n), Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}})
				return len(sb.got()) > 0
			})

			const total, per = 1000, 50
			for i := 0; i < total; i += per {
				if code, body := a.publishBatch("/v1/topics/k", batch("e", "/pub", i, per)); code != 202 {
					t.Fatalf("publish %d: %d %s", i, code, body)
				}
				switch i + per {
				case total / 2:
					a.stop(syscall.SIGKILL)
					a.start()
				case total * 3 / 4:
					b.stop(syscall.SIGKILL)
					b.start()
				}
			}
			got := map[string]bool{}
			waitFor(t, 60*time.Second, "every acknowledged event at b's subscription", func() bool {
				for _, id := range sb.got() {
					got[id] = true
				}
				for i := range total {
					if !got[fmt.Sprint(i)] {
						return false
					}
				}
				return true
			})
		})
	}
}
