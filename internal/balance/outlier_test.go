package balance

import (
	"fmt"
	"testing"
	"time"
)

func nCands(n int) []Candidate {
	cands := make([]Candidate, n)
	for i := range cands {
		cands[i] = Candidate{Key: Key(fmt.Sprintf("c%02d", i)), Cost: 1}
	}
	return cands
}

func TestEjectionArithmetic(t *testing.T) {
	cands := nCands(3)
	p := newPicker(Config{}, 1)
	p.Snapshot(t0, cands)
	const k = "c00"
	now := t0

	// Four errors are not enough; the fifth ejects for 30s.
	fail(p, now, k, 4)
	if s := status(p, now, cands, k); s.Status != StatusOK || s.ConsecutiveErrors != 4 {
		t.Fatalf("after 4 errors: %+v", s)
	}
	steps := []struct {
		wait      time.Duration // healthy time before the next run of errors
		times     int
		ejectedTo time.Duration // from the moment of ejection
	}{
		{0, 1, 30 * time.Second},
		{0, 2, 60 * time.Second}, // right after returning: times grows
		{0, 3, 90 * time.Second},
		{10 * time.Second, 3, 90 * time.Second},  // one interval healthy forgives one: 3-1+1
		{25 * time.Second, 2, 60 * time.Second},  // two intervals: 3-2+1
		{100 * time.Second, 1, 30 * time.Second}, // fully forgiven
	}
	for i, st := range steps {
		now = now.Add(st.wait)
		if i == 0 {
			fail(p, now, k, 1)
		} else {
			fail(p, now, k, 5)
		}
		s := status(p, now, cands, k)
		if s.Status != StatusEjected || s.TimesEjected != st.times || !s.EjectedUntil.Equal(now.Add(st.ejectedTo)) {
			t.Fatalf("step %d: %+v, want ejected %d times until +%v", i, s, st.times, st.ejectedTo)
		}
		if s.ConsecutiveErrors != 0 {
			t.Fatalf("step %d: error run not reset by ejection: %d", i, s.ConsecutiveErrors)
		}
		// Errors while ejected neither extend the ejection nor count.
		fail(p, now.Add(time.Second), k, 10)
		if s2 := status(p, now.Add(time.Second), cands, k); !s2.EjectedUntil.Equal(s.EjectedUntil) || s2.ConsecutiveErrors != 0 {
			t.Fatalf("step %d: errors while ejected changed state: %+v", i, s2)
		}
		// Out until exactly the deadline, back at it.
		end := s.EjectedUntil
		if got := status(p, end.Add(-time.Nanosecond), cands, k).Status; got != StatusEjected {
			t.Fatalf("step %d: %s just before the end", i, got)
		}
		if got := status(p, end, cands, k).Status; got != StatusOK {
			t.Fatalf("step %d: %s at the end", i, got)
		}
		now = end
	}
}

func TestEjectionCappedByMaxEjection(t *testing.T) {
	cands := nCands(2)
	p := newPicker(Config{Outlier: Outlier{BaseEjection: time.Minute, MaxEjection: 150 * time.Second}}, 1)
	p.Snapshot(t0, cands)
	now := t0
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 150 * time.Second, 150 * time.Second} {
		fail(p, now, "c00", 5)
		s := status(p, now, cands, "c00")
		if got := s.EjectedUntil.Sub(now); got != want {
			t.Fatalf("ejection %d lasts %v, want %v", i+1, got, want)
		}
		now = s.EjectedUntil
	}
}

func TestErrorRunResets(t *testing.T) {
	tests := []struct {
		name    string
		middle  Outcome
		ejected bool // after 4 errors, middle, 1 error
	}{
		{"success resets", Success, false},
		{"client error resets", ClientError, false},
		{"cancelled does not count", Cancelled, true},
		{"connect failure counts", ConnectFailure, true},
		{"server error counts", ServerError, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := nCands(3)
			p := newPicker(Config{}, 1)
			p.Snapshot(t0, cands)
			fail(p, t0, "c00", 4)
			p.Start("c00", Request)
			p.Done(t0, "c00", Request, time.Millisecond, tt.middle)
			fail(p, t0, "c00", 1)
			if got := status(p, t0, cands, "c00").Status == StatusEjected; got != tt.ejected {
				t.Fatalf("ejected = %v, want %v", got, tt.ejected)
			}
		})
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		n, pct int
		want   int // at most this many out at once
	}{
		{3, 10, 1},  // at least one, whatever the percent
		{10, 10, 1}, // Istio default
		{20, 10, 2},
		{25, 10, 2}, // floor
		{4, 50, 2},
		{4, 100, 3}, // the last one stays
		{5, -1, 0},  // negative disables
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d candidates %d%%", tt.n, tt.pct), func(t *testing.T) {
			cands := nCands(tt.n)
			p := newPicker(Config{Outlier: Outlier{MaxEjectionPercent: tt.pct}}, 1)
			p.Snapshot(t0, cands)
			for _, c := range cands {
				fail(p, t0, c.Key, 5)
			}
			ejected := 0
			for _, s := range p.Snapshot(t0, cands) {
				if s.Status == StatusEjected {
					ejected++
				}
			}
			if ejected != tt.want {
				t.Fatalf("%d ejected, want %d", ejected, tt.want)
			}
		})
	}
}

// A candidate whose ejection the cap refused keeps its error run, so it is
// ejected at its next error once room frees up (weft; Envoy would need a
// new run of errors).
func TestRefusedEjectionRetriedWhenCapFrees(t *testing.T) {
	cands := nCands(5)
	p := newPicker(Config{}, 1)
	p.Snapshot(t0, cands)
	fail(p, t0, "c00", 5)
	fail(p, t0, "c01", 5)
	if s := status(p, t0, cands, "c01"); s.Status != StatusOK || s.ConsecutiveErrors != 5 {
		t.Fatalf("c01 %+v, want refused with its run kept", s)
	}
	back := t0.Add(DefaultBaseEjection)
	fail(p, back, "c01", 1)
	if s := status(p, back, cands, "c01"); s.Status != StatusEjected {
		t.Fatalf("c01 %+v, want ejected once c00 returned", s)
	}
}

func TestLastOneStays(t *testing.T) {
	all := Config{Outlier: Outlier{MaxEjectionPercent: 100}}
	t.Run("single candidate", func(t *testing.T) {
		cands := nCands(1)
		p := newPicker(all, 1)
		p.Snapshot(t0, cands)
		fail(p, t0, "c00", 50)
		if s := status(p, t0, cands, "c00"); s.Status != StatusOK {
			t.Fatalf("sole candidate %+v", s)
		}
	})
	t.Run("two failing", func(t *testing.T) {
		cands := []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 5}}
		p := newPicker(all, 1)
		p.Snapshot(t0, cands)
		fail(p, t0, "a", 5)
		fail(p, t0, "b", 20)
		if a, b := status(p, t0, cands, "a"), status(p, t0, cands, "b"); a.Status != StatusEjected || b.Status != StatusOK {
			t.Fatalf("a %s, b %s; want a ejected, b kept", a.Status, b.Status)
		}
		if k, _ := p.Pick(t0, cands, nil); k != "b" {
			t.Fatalf("picked %s, want the one left", k)
		}
	})
	t.Run("others saturated", func(t *testing.T) {
		cands := []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 1, Limits: Limits{MaxConnections: 1}}}
		p := newPicker(all, 1)
		p.Snapshot(t0, cands)
		p.Start("b", Connection)
		fail(p, t0, "a", 5)
		if s := status(p, t0, cands, "a"); s.Status != StatusOK {
			t.Fatalf("a %+v: ejected while the only other one is saturated", s)
		}
	})
}

func TestReturnAfterEjection(t *testing.T) {
	cands := []Candidate{{Key: "local", Cost: 1}, {Key: "remote", Cost: 10}}
	p := newPicker(Config{}, 1)
	p.Snapshot(t0, cands)
	fail(p, t0, "local", 5)
	for _, d := range []time.Duration{0, time.Second, 29 * time.Second, DefaultBaseEjection - 1} {
		if k, _ := p.Pick(t0.Add(d), cands, nil); k != "remote" {
			t.Fatalf("at +%v picked %s while local is ejected", d, k)
		}
	}
	if k, _ := p.Pick(t0.Add(DefaultBaseEjection), cands, nil); k != "local" {
		t.Fatalf("after the ejection picked %s, want local back", k)
	}
}
