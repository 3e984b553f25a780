package routing

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"weft.dev/weft/internal/siteid"
)

// TestScenarios runs the scripts in testdata. Regenerate the expected
// output with: go test ./internal/routing -run TestScenarios -rewrite
//
// Commands:
//
//	add-sites a b c [seq=N]     new routers (IDs are the names' bytes, so ID order is name order)
//	link a b COST [COST-BA]     configure a link on both sides (or change its cost)
//	unlink a b                  remove a link on both sides
//	partition b                 b loses every link
//	restart b seq=N             b restarts with seqBase N; neighbors see a session reset
//	connector c ADDR [protocol=P] [capacity=N]
//	interest c PATTERN
//	stabilize [trace]           deliver until quiescent (trace: list messages); checks every table against a reference
//	routes a | candidates a ADDR | addresses a | db a | disjoint a DST [avoid=(x,y)]
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := newSim(t)
		s.wire = true
		s.eager = true
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return runCommand(t, s, d)
		})
	})
}

func scenarioID(name string) siteid.ID {
	var id siteid.ID
	if len(name) > len(id) || name == "" {
		panic("scenario site names are 1 to 16 bytes")
	}
	copy(id[:], name)
	return id
}

// positional returns the arguments without a value (datadriven parses
// "link a b 1" as three keys).
func positional(d *datadriven.TestData) []string {
	var out []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			out = append(out, a.Key)
		}
	}
	return out
}

func runCommand(t *testing.T, s *sim, d *datadriven.TestData) string {
	args := positional(d)
	need := func(n int) {
		if len(args) < n {
			t.Fatalf("%s: want at least %d arguments, have %v", d.Pos, n, args)
		}
	}
	num := func(a string) uint64 {
		v, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		return v
	}
	var b strings.Builder
	switch d.Cmd {
	case "add-sites":
		var seq uint64
		if d.HasArg("seq") {
			d.ScanArgs(t, "seq", &seq)
		}
		for _, name := range args {
			s.add(scenarioID(name), name, seq)
		}
		return "ok"
	case "link":
		need(3)
		ab := num(args[2])
		ba := ab
		if len(args) > 3 {
			ba = num(args[3])
		}
		s.link(s.site(args[0]), s.site(args[1]), uint32(ab), uint32(ba))
		return "ok"
	case "unlink":
		need(2)
		s.unlink(s.site(args[0]), s.site(args[1]))
		return "ok"
	case "partition":
		need(1)
		s.partition(s.site(args[0]))
		return "ok"
	case "restart":
		need(1)
		var seq uint64
		d.ScanArgs(t, "seq", &seq)
		s.restart(s.site(args[0]), seq)
		return "ok"
	case "connector":
		need(2)
		c := Connector{Address: args[1], Protocol: "tcp", Capacity: 1}
		if d.HasArg("protocol") {
			d.ScanArgs(t, "protocol", &c.Protocol)
		}
		if d.HasArg("capacity") {
			var n uint64
			d.ScanArgs(t, "capacity", &n)
			c.Capacity = uint32(n)
		}
		site := s.site(args[0])
		site.conns = append(site.conns, c)
		s.push(site)
		return "ok"
	case "interest":
		need(2)
		site := s.site(args[0])
		site.interests = append(site.interests, args[1])
		s.push(site)
		return "ok"
	case "stabilize":
		if d.HasArg("trace") {
			s.trace = func(from, to siteid.ID, rec Record) {
				fmt.Fprintf(&b, "%s->%s %s@%d\n", s.name(from), s.name(to), rec.Name, rec.Seq)
			}
			defer func() { s.trace = nil }()
		}
		st := s.stabilize()
		fmt.Fprintf(&b, "rounds=%d messages=%d\n", st.rounds, st.messages)
		fmt.Fprintf(&b, "table changed: %s\n", strings.Join(st.changed, " "))
		for _, e := range s.check() {
			t.Errorf("%s: %s", d.Pos, e)
			fmt.Fprintf(&b, "MISMATCH %s\n", e)
		}
	case "routes":
		need(1)
		for _, r := range s.site(args[0]).r.Table().Sites() {
			fmt.Fprintf(&b, "%s cost=%d path=%s\n", r.Name, r.Cost, s.names(r.Path))
		}
	case "candidates":
		need(2)
		cs := s.site(args[0]).r.Table().Candidates(args[1])
		if len(cs) == 0 {
			return "none"
		}
		for _, c := range cs {
			fmt.Fprintf(&b, "%s cost=%d path=%s protocol=%s capacity=%d\n", c.SiteName, c.Cost, s.names(c.Path), c.Protocol, c.Capacity)
		}
	case "addresses":
		need(1)
		for _, a := range s.site(args[0]).r.Table().Addresses() {
			var at []string
			for _, c := range a.Candidates {
				at = append(at, fmt.Sprintf("%s(%d)", c.SiteName, c.Cost))
			}
			fmt.Fprintf(&b, "%s: %s\n", a.Address, strings.Join(at, " "))
		}
	case "db":
		need(1)
		r := s.site(args[0]).r
		r.Table() // the database is pruned when the table is computed
		fmt.Fprintf(&b, "db:%s\n", s.recordList(r.db))
		lost := map[siteid.ID]*Record{}
		for id, l := range r.lost {
			lost[id] = l.rec
		}
		fmt.Fprintf(&b, "lost:%s\n", s.recordList(lost))
	case "records":
		need(1)
		for _, rec := range s.site(args[0]).r.Table().Records() {
			var links []string
			for _, l := range rec.Links {
				links = append(links, fmt.Sprintf("%s:%d", s.name(l.Peer), l.Cost))
			}
			fmt.Fprintf(&b, "%s seq=%d links=[%s] connectors=%d interests=%v\n", rec.Name, rec.Seq, strings.Join(links, " "), len(rec.Connectors), rec.Interests)
		}
	case "disjoint":
		need(2)
		var avoid []siteid.ID
		if arg, ok := d.Arg("avoid"); ok {
			for _, v := range arg.Vals {
				avoid = append(avoid, s.site(v).id)
			}
		}
		p, ok := s.site(args[0]).r.Table().DisjointPath(s.site(args[1]).id, avoid)
		if !ok {
			return "none"
		}
		return "path=" + s.names(p)
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	return b.String()
}

func (s *sim) names(p []siteid.ID) string {
	names := make([]string, len(p))
	for i, id := range p {
		names[i] = s.name(id)
	}
	return strings.Join(names, ",")
}

func (s *sim) recordList(m map[siteid.ID]*Record) string {
	var out []string
	for id, rec := range m {
		out = append(out, fmt.Sprintf(" %s@%d", s.name(id), rec.Seq))
	}
	slices.Sort(out)
	return strings.Join(out, "")
}
