package routing

import (
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"testing"

	"weft.dev/weft/internal/siteid"
)

// randomNet builds n sites with random IDs on a connected random graph: a
// random spanning tree plus extra random links, costs 1..20 (small, so
// equal-cost ties are common) and sometimes different per direction. Every
// site originates once and brings its sessions up; nothing is delivered.
func randomNet(tb testing.TB, rng *rand.Rand, n, extra int) *sim {
	s := newSim(tb)
	for i := range n {
		var id siteid.ID
		for id.IsZero() || s.byID[id] != nil {
			for k := range id {
				id[k] = byte(rng.UintN(256))
			}
		}
		s.add(id, fmt.Sprintf("s%04d", i), 1)
	}
	for i := 1; i < n; i++ {
		connect(rng, s.sites[i], s.sites[rng.IntN(i)])
	}
	for added := 0; added < extra; {
		a, b := s.sites[rng.IntN(n)], s.sites[rng.IntN(n)]
		if a != b && a.links[b.id].Peer.IsZero() {
			connect(rng, a, b)
			added++
		}
	}
	for _, site := range s.sites {
		s.push(site)
	}
	for _, site := range s.sites {
		for _, peer := range slices.SortedFunc(maps.Keys(site.links), siteid.ID.Compare) {
			site.r.NeighborUp(peer)
		}
	}
	return s
}

func connect(rng *rand.Rand, a, b *simSite) {
	ab := uint32(rng.IntN(20) + 1)
	ba := ab
	if rng.IntN(4) == 0 {
		ba = uint32(rng.IntN(20) + 1)
	}
	a.links[b.id] = Link{Peer: b.id, Cost: ab}
	b.links[a.id] = Link{Peer: a.id, Cost: ba}
}

// change applies link removals and additions to the configuration first
// and originates each touched site once, as a site that batches events
// would; that makes adds and removes race through the network together.
func (s *sim) change(remove, add [][2]*simSite, rng *rand.Rand) {
	touched := map[*simSite]bool{}
	for _, l := range remove {
		a, b := l[0], l[1]
		if _, ok := a.links[b.id]; !ok {
			continue
		}
		delete(a.links, b.id)
		delete(b.links, a.id)
		a.r.NeighborDown(b.id)
		b.r.NeighborDown(a.id)
		touched[a], touched[b] = true, true
	}
	var up [][2]*simSite
	for _, l := range add {
		a, b := l[0], l[1]
		if _, ok := a.links[b.id]; ok || a == b {
			continue
		}
		connect(rng, a, b)
		touched[a], touched[b] = true, true
		up = append(up, l)
	}
	for _, site := range s.sites {
		if touched[site] {
			s.push(site)
		}
	}
	for _, l := range up {
		l[0].r.NeighborUp(l[1].id)
		l[1].r.NeighborUp(l[0].id)
	}
}

func (s *sim) randomLinks(rng *rand.Rand, k int) [][2]*simSite {
	var all [][2]*simSite
	for _, site := range s.sites {
		for _, peer := range slices.SortedFunc(maps.Keys(site.links), siteid.ID.Compare) {
			if site.id.Compare(peer) < 0 {
				all = append(all, [2]*simSite{site, s.byID[peer]})
			}
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:min(k, len(all))]
}

func (s *sim) mustCheck(tb testing.TB, phase string) {
	tb.Helper()
	if errs := s.check(); len(errs) > 0 {
		tb.Fatalf("%s: %d sites differ from the reference, first: %v", phase, len(errs), errs[:min(10, len(errs))])
	}
}

// TestRandomNetwork checks, on 1000 sites, that after every stabilize each
// router's table is exactly the reference Dijkstra on the configured graph
// (costs, tie-broken paths, no repeated sites) and each database holds
// exactly the reachable sites, at their latest numbers. Tables are computed
// only when checked; TestChurn covers eager computation.
func TestRandomNetwork(t *testing.T) {
	n := 1000
	switch {
	case testing.Short():
		n = 200
	case raceEnabled:
		n = 400
	}
	// A million stored records are live throughout; collecting less often
	// halves the run time.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	rng := rand.New(rand.NewPCG(1, 2))
	s := randomNet(t, rng, n, n)
	st := s.stabilize()
	t.Logf("initial: %d rounds, %d messages", st.rounds, st.messages)
	s.mustCheck(t, "initial")

	// Cut random links, and cut a few sites off entirely.
	remove := s.randomLinks(rng, n/10)
	for range n / 50 {
		site := s.sites[rng.IntN(n)]
		for peer := range site.links {
			remove = append(remove, [2]*simSite{site, s.byID[peer]})
		}
	}
	s.change(remove, nil, rng)
	st = s.stabilize()
	t.Logf("after removals: %d rounds, %d messages", st.rounds, st.messages)
	s.mustCheck(t, "after removals")

}

// TestChurn runs rounds of mixed changes on 200 sites whose routers compute
// their tables whenever they have news, as real sites do. Adds and removes
// race each other, so sites look unreachable for a moment, their records
// are set aside and must be restored, not lost.
func TestChurn(t *testing.T) {
	n := 200
	rng := rand.New(rand.NewPCG(3, 4))
	s := randomNet(t, rng, n, n/2)
	s.eager = true
	s.stabilize()
	s.mustCheck(t, "initial")
	for round := range 6 {
		var add [][2]*simSite
		for range n / 10 {
			add = append(add, [2]*simSite{s.sites[rng.IntN(n)], s.sites[rng.IntN(n)]})
		}
		remove := s.randomLinks(rng, n/10)
		if round%2 == 1 {
			// Cut off a site and let it rejoin elsewhere in the same batch.
			site := s.sites[rng.IntN(n)]
			for peer := range site.links {
				remove = append(remove, [2]*simSite{site, s.byID[peer]})
			}
			add = append(add, [2]*simSite{site, s.sites[rng.IntN(n)]})
		}
		s.change(remove, add, rng)
		st := s.stabilize()
		t.Logf("round %d: %d rounds, %d messages", round, st.rounds, st.messages)
		s.mustCheck(t, fmt.Sprintf("round %d", round))
	}
	restores := 0
	for _, site := range s.sites {
		restores += site.r.restores
	}
	t.Logf("%d records restored from lost", restores)
	if restores == 0 {
		t.Errorf("no record was ever restored: the churn no longer exercises the race it is meant to")
	}
}

// TestDeterministic runs the same random history twice and requires the
// same messages in the same order and the same tables.
func TestDeterministic(t *testing.T) {
	run := func() (uint64, []string) {
		rng := rand.New(rand.NewPCG(7, 8))
		s := randomNet(t, rng, 100, 80)
		h := fnv.New64a()
		s.trace = func(from, to siteid.ID, rec Record) {
			b, err := rec.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			h.Write(from[:])
			h.Write(to[:])
			h.Write(b)
		}
		s.stabilize()
		s.change(s.randomLinks(rng, 30), [][2]*simSite{{s.sites[1], s.sites[50]}, {s.sites[3], s.sites[99]}}, rng)
		s.stabilize()
		var tables []string
		for _, site := range s.sites {
			tables = append(tables, fmt.Sprint(site.r.Table().Sites()))
		}
		return h.Sum64(), tables
	}
	h1, t1 := run()
	h2, t2 := run()
	if h1 != h2 {
		t.Errorf("message streams differ: %x vs %x", h1, h2)
	}
	if !slices.Equal(t1, t2) {
		t.Errorf("tables differ")
	}
}

// BenchmarkConverge1000 measures a cold start of a 1000-site network with
// about 2000 links: every site originates and floods, every router
// computes its table when it has news, until nothing is left to send.
func BenchmarkConverge1000(b *testing.B) {
	var msgs, rounds int
	for b.Loop() {
		b.StopTimer()
		rng := rand.New(rand.NewPCG(1, 2))
		s := randomNet(b, rng, 1000, 1000)
		b.StartTimer()
		st := s.stabilize()
		msgs, rounds = st.messages, st.rounds
	}
	b.ReportMetric(float64(msgs), "msgs/op")
	b.ReportMetric(float64(rounds), "rounds/op")
}
