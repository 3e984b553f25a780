package balance

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newPicker(cfg Config, seed uint64) *Picker {
	return NewPicker(cfg, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
}

// fail reports n consecutive errors for key, as finished requests.
func fail(p *Picker, now time.Time, key Key, n int) {
	for range n {
		p.Start(key, Request)
		p.Done(now, key, Request, time.Millisecond, GatewayError)
	}
}

func status(p *Picker, now time.Time, cands []Candidate, key Key) State {
	for _, s := range p.Snapshot(now, cands) {
		if s.Key == key {
			return s
		}
	}
	panic("no state for " + string(key))
}

// picks counts the keys returned by n Picks without load.
func picks(p *Picker, now time.Time, cands []Candidate, exclude func(Key) bool, n int) map[Key]int {
	got := map[Key]int{}
	for range n {
		k, ok := p.Pick(now, cands, exclude)
		if !ok {
			k = "<none>"
		}
		got[k]++
	}
	return got
}

func keysOf(m map[Key]int) []Key {
	var ks []Key
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestTierOrder(t *testing.T) {
	cfg := Config{Outlier: Outlier{MaxEjectionPercent: 100}}
	tests := []struct {
		name    string
		cands   []Candidate
		setup   func(p *Picker, cands []Candidate)
		exclude []Key
		want    []Key // the exact set of keys Pick returns over many calls
		order   []Key // Order's result, when it is fully determined
	}{
		{
			name:  "cheapest tier wins",
			cands: []Candidate{{Key: "remote", Cost: 10}, {Key: "local", Cost: 1}, {Key: "mid", Cost: 5}},
			want:  []Key{"local"},
			order: []Key{"local", "mid", "remote"},
		},
		{
			name:  "equal cost shares",
			cands: []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 1}, {Key: "c", Cost: 2}},
			want:  []Key{"a", "b"},
		},
		{
			name:  "saturated overflows to next tier",
			cands: []Candidate{{Key: "local", Cost: 1, Limits: Limits{MaxConnections: 1}}, {Key: "remote", Cost: 10}},
			setup: func(p *Picker, _ []Candidate) { p.Start("local", Connection) },
			want:  []Key{"remote"},
			order: []Key{"remote"},
		},
		{
			name: "saturated overflows within tier first",
			cands: []Candidate{
				{Key: "a", Cost: 1, Limits: Limits{MaxConnections: 1}}, {Key: "b", Cost: 1}, {Key: "remote", Cost: 10},
			},
			setup: func(p *Picker, _ []Candidate) { p.Start("a", Connection) },
			want:  []Key{"b"},
			order: []Key{"b", "remote"},
		},
		{
			name:  "ejected overflows to next tier and is listed last",
			cands: []Candidate{{Key: "local", Cost: 1}, {Key: "remote", Cost: 10}},
			setup: func(p *Picker, cands []Candidate) {
				p.Snapshot(t0, cands)
				fail(p, t0, "local", 5)
			},
			want:  []Key{"remote"},
			order: []Key{"remote", "local"},
		},
		{
			name:    "exclude skips tried candidates",
			cands:   []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 2}, {Key: "c", Cost: 3}},
			exclude: []Key{"a", "b"},
			want:    []Key{"c"},
		},
		{
			name:  "all saturated refuses",
			cands: []Candidate{{Key: "a", Cost: 1, Limits: Limits{MaxConnections: 1}}, {Key: "b", Cost: 2, Limits: Limits{MaxRequests: 1}}},
			setup: func(p *Picker, _ []Candidate) {
				p.Start("a", Connection)
				p.Start("b", Request)
			},
			want:  []Key{"<none>"},
			order: nil,
		},
		{
			name:  "only ejected left falls back to them, cheapest first",
			cands: []Candidate{{Key: "b", Cost: 2}, {Key: "a", Cost: 1}},
			setup: func(p *Picker, _ []Candidate) {
				// Eject a and b while c keeps them company, then c goes away.
				all := []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 2}, {Key: "c", Cost: 3}}
				p.Snapshot(t0, all)
				fail(p, t0, "a", 5)
				fail(p, t0, "b", 5)
				p.Forget(func(k Key) bool { return k != "c" })
			},
			want:  []Key{"a"},
			order: []Key{"a", "b"},
		},
		{
			name:  "saturated never returned even as fallback",
			cands: []Candidate{{Key: "a", Cost: 1, Limits: Limits{MaxConnections: 1}}, {Key: "b", Cost: 2}},
			setup: func(p *Picker, _ []Candidate) {
				all := []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 2}, {Key: "c", Cost: 3}}
				p.Snapshot(t0, all)
				fail(p, t0, "b", 5)
				p.Forget(func(k Key) bool { return k != "c" })
				p.Start("a", Connection)
			},
			want:  []Key{"b"},
			order: []Key{"b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPicker(cfg, 1)
			if tt.setup != nil {
				tt.setup(p, tt.cands)
			}
			exclude := func(k Key) bool { return slices.Contains(tt.exclude, k) }
			got := keysOf(picks(p, t0, tt.cands, exclude, 200))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Pick returned %v, want %v", got, tt.want)
			}
			if tt.order != nil || tt.want[0] == "<none>" {
				if o := p.Order(t0, tt.cands); !slices.Equal(o, tt.order) {
					t.Errorf("Order = %v, want %v", o, tt.order)
				}
			}
		})
	}
}

func TestOrderListsEveryUsableCandidateOnce(t *testing.T) {
	p := newPicker(Config{}, 7)
	cands := []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 1}, {Key: "c", Cost: 1}, {Key: "d", Cost: 2}, {Key: "e", Cost: 2}}
	for range 50 {
		o := p.Order(t0, cands)
		if len(o) != 5 {
			t.Fatalf("Order = %v, want 5 keys", o)
		}
		tier1 := slices.Clone(o[:3])
		slices.Sort(tier1)
		tier2 := slices.Clone(o[3:])
		slices.Sort(tier2)
		if !slices.Equal(tier1, []Key{"a", "b", "c"}) || !slices.Equal(tier2, []Key{"d", "e"}) {
			t.Fatalf("Order = %v: tiers mixed or keys repeated", o)
		}
	}
}

// TestOverflowAndReturn is the APAN-50 scenario at the balancer level: the
// local site takes one connection, the rest spill to the remote site, and
// work comes back when the local connection closes.
func TestOverflowAndReturn(t *testing.T) {
	cands := []Candidate{
		{Key: "local", Cost: 1, Limits: Limits{MaxConnections: 1}},
		{Key: "remote", Cost: 20},
	}
	p := newPicker(Config{}, 1)
	open := func() Key {
		k, ok := p.Pick(t0, cands, nil)
		if !ok {
			t.Fatal("no candidate")
		}
		p.Start(k, Connection)
		return k
	}
	closeConn := func(k Key) { p.Done(t0, k, Connection, 0, Cancelled) }

	// One client at a time: always local.
	for i := range 5 {
		if k := open(); k != "local" {
			t.Fatalf("sequential client %d went to %s", i, k)
		}
		closeConn("local")
	}
	// Three in parallel: one local, two remote.
	got := []Key{open(), open(), open()}
	if want := []Key{"local", "remote", "remote"}; !slices.Equal(got, want) {
		t.Fatalf("parallel clients went to %v, want %v", got, want)
	}
	if s := status(p, t0, cands, "local"); s.Status != StatusSaturated || s.Connections != 1 {
		t.Fatalf("local state %+v, want saturated with 1 connection", s)
	}
	// Load drops: the next one comes back.
	closeConn("local")
	if k := open(); k != "local" {
		t.Fatalf("after local freed, went to %s", k)
	}
}

func TestSaturationByEachLimit(t *testing.T) {
	tests := []struct {
		name     string
		limits   Limits
		kind     Kind
		capacity int // Starts that still leave it usable
	}{
		{"max connections", Limits{MaxConnections: 3}, Connection, 3},
		{"max requests", Limits{MaxRequests: 2}, Request, 2},
		{"max pending beyond connections", Limits{MaxConnections: 2, MaxPending: 3}, Request, 5},
		{"max requests below connections+pending", Limits{MaxConnections: 2, MaxPending: 3, MaxRequests: 4}, Request, 4},
		// Documented: requests do not count against MaxConnections, and
		// connections not against MaxRequests.
		{"connections ignore request limit", Limits{MaxRequests: 1}, Connection, 50},
		{"requests ignore connection limit alone", Limits{MaxConnections: 1}, Request, 50},
		{"max pending alone has no effect", Limits{MaxPending: 1}, Request, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := []Candidate{{Key: "a", Cost: 1, Limits: tt.limits}, {Key: "b", Cost: 2}}
			p := newPicker(Config{}, 1)
			for i := range tt.capacity {
				if k, _ := p.Pick(t0, cands, nil); k != "a" {
					t.Fatalf("start %d: picked %s before a was full", i, k)
				}
				p.Start("a", tt.kind)
			}
			if tt.capacity >= 50 {
				if s := status(p, t0, cands, "a"); s.Status != StatusOK {
					t.Fatalf("a %+v, want ok", s)
				}
				return
			}
			if k, _ := p.Pick(t0, cands, nil); k != "b" {
				t.Fatalf("a full: picked %s, want overflow to b", k)
			}
			s := status(p, t0, cands, "a")
			if s.Status != StatusSaturated {
				t.Fatalf("a %+v, want saturated", s)
			}
			if tt.limits.MaxPending > 0 && s.Pending != uint32(tt.capacity)-tt.limits.MaxConnections {
				t.Errorf("pending = %d, want %d", s.Pending, uint32(tt.capacity)-tt.limits.MaxConnections)
			}
			p.Done(t0, "a", tt.kind, time.Millisecond, Success)
			if k, _ := p.Pick(t0, cands, nil); k != "a" {
				t.Fatalf("after one Done: picked %s, want a back", k)
			}
		})
	}
}

func TestOutcomeForStatus(t *testing.T) {
	for code, want := range map[int]Outcome{
		200: Success, 204: Success, 301: Success, 101: Success,
		400: ClientError, 404: ClientError, 429: ClientError,
		500: ServerError, 501: ServerError, 505: ServerError,
		502: GatewayError, 503: GatewayError, 504: GatewayError,
	} {
		if got := OutcomeForStatus(code); got != want {
			t.Errorf("OutcomeForStatus(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := DefaultConfig()
	o := c.Outlier
	if o.ConsecutiveErrors != 5 || o.Interval != 10*time.Second || o.BaseEjection != 30*time.Second ||
		o.MaxEjectionPercent != 10 || o.MaxEjection != 300*time.Second || c.EWMAHalfLife != 5*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	if got := newPicker(Config{Outlier: Outlier{MaxEjectionPercent: 250}}, 1).Config().Outlier.MaxEjectionPercent; got != 100 {
		t.Errorf("percent 250 became %d, want 100", got)
	}
}

func TestForget(t *testing.T) {
	cands := []Candidate{{Key: "a", Cost: 1}, {Key: "b", Cost: 1}}
	p := newPicker(Config{}, 1)
	p.Snapshot(t0, cands)
	p.Start("a", Request)
	fail(p, t0, "a", 3)
	p.Forget(func(k Key) bool { return k == "b" })
	if len(p.entries) != 1 {
		t.Fatalf("%d entries after Forget, want 1", len(p.entries))
	}
	// A late Done for a forgotten key must not resurrect it or underflow.
	p.Done(t0, "a", Request, time.Second, GatewayError)
	if len(p.entries) != 1 {
		t.Fatal("Done resurrected a forgotten key")
	}
	if s := status(p, t0, cands, "a"); s.InFlight != 0 || s.ConsecutiveErrors != 0 || s.EWMA != 0 {
		t.Fatalf("a came back with old state %+v", s)
	}
}

func TestDeterminism(t *testing.T) {
	run := func(seed uint64) []Key {
		p := newPicker(Config{}, seed)
		r := rand.New(rand.NewPCG(99, 99)) // the workload, same for every run
		cands := make([]Candidate, 8)
		for i := range cands {
			cands[i] = Candidate{Key: Key(rune('a' + i)), Cost: uint64(i / 4), Capacity: uint32(1 + i%3)}
		}
		var out []Key
		var open []Key
		now := t0
		for range 2000 {
			now = now.Add(time.Duration(r.IntN(5)) * time.Millisecond)
			k, ok := p.Pick(now, cands, nil)
			if !ok {
				t.Fatal("no candidate")
			}
			out = append(out, k)
			p.Start(k, Request)
			open = append(open, k)
			if len(open) > 6 {
				j := r.IntN(len(open))
				p.Done(now, open[j], Request, time.Duration(1+r.IntN(50))*time.Millisecond, Outcome(r.IntN(6)))
				open = slices.Delete(open, j, j+1)
			}
		}
		return out
	}
	a, b := run(42), run(42)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different choices")
	}
	if slices.Equal(a, run(43)) {
		t.Fatal("different seeds gave identical choices: randomness not used")
	}
}
