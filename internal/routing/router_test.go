package routing

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"weft.dev/weft/internal/siteid"
)

// msgs renders messages as "to:site@seq" with one-byte IDs.
func msgs(ms []Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(rune('0'+m.To[15]))+":"+string(rune('0'+m.Record.Site[15]))+"@"+string(rune('0'+m.Record.Seq)))
	}
	return out
}

func expectMsgs(t *testing.T, r *Router, want ...string) {
	t.Helper()
	rd := r.Ready()
	if got := msgs(rd.Messages); !slices.Equal(got, want) {
		t.Fatalf("messages %v, want %v", got, want)
	}
	r.Advance()
}

func rec(site byte, seq uint64, peers ...byte) Record {
	r := Record{Site: id(site), Name: string(rune('a' + site)), Seq: seq}
	for _, p := range peers {
		r.Links = append(r.Links, Link{Peer: id(p), Cost: 1})
	}
	return r
}

func links(peers ...byte) []Link {
	var out []Link
	for _, p := range peers {
		out = append(out, Link{Peer: id(p), Cost: 1})
	}
	return out
}

func TestReadyAdvance(t *testing.T) {
	r := New(id(1), "a", 0)
	if rd := r.Ready(); len(rd.Messages) != 0 || !rd.TableChanged {
		t.Fatalf("fresh router: %+v, want no messages and a table change", rd)
	}
	r.Advance()
	if rd := r.Ready(); rd.TableChanged {
		t.Fatalf("TableChanged after Advance")
	}
	r.SetLocal(links(2), nil, nil)
	r.NeighborUp(id(2))
	rd := r.Ready()
	if got := msgs(rd.Messages); !slices.Equal(got, []string{"2:1@1"}) || !rd.TableChanged {
		t.Fatalf("after NeighborUp: %v %v", got, rd.TableChanged)
	}
	// Without Advance, Ready repeats; what arrives in between is kept.
	r.Step(id(2), rec(2, 1, 1))
	r.NeighborUp(id(3))
	r.Advance()
	expectMsgs(t, r, "3:1@1", "3:2@1")
	if r.Ready().TableChanged {
		t.Errorf("change before the last Ready was acknowledged by Advance, none since")
	}
}

func TestNeighborDownDropsQueued(t *testing.T) {
	r := New(id(1), "a", 0)
	r.NeighborUp(id(2))
	r.NeighborUp(id(3))
	r.Ready()
	r.NeighborDown(id(2))
	r.SetLocal(links(3), nil, nil)
	expectMsgs(t, r, "3:1@0", "3:1@1")
	expectMsgs(t, r)
}

func TestFlooding(t *testing.T) {
	r := New(id(1), "a", 0)
	r.SetLocal(links(2, 3, 4), nil, nil)
	for _, p := range []byte{2, 3, 4} {
		r.NeighborUp(id(p))
	}
	r.Ready()
	r.Advance()

	// New: stored and sent to every neighbor but the sender.
	r.Step(id(2), rec(5, 3, 2))
	expectMsgs(t, r, "3:5@3", "4:5@3")
	// Same again, or older from a neighbor that is up to date: silence.
	r.Step(id(3), rec(5, 3, 2))
	expectMsgs(t, r)
	// Older: the sender is behind and gets our copy.
	r.Step(id(4), rec(5, 2, 2))
	expectMsgs(t, r, "4:5@3")
	// Newer replaces.
	r.Step(id(4), rec(5, 4, 2))
	expectMsgs(t, r, "2:5@4", "3:5@4")
	// The origin sends other content under a number we have: it
	// restarted; it gets our copy so it can jump past. A non-origin doing
	// the same is ignored, or two copies would bounce forever.
	other := rec(5, 4, 3)
	r.Step(id(3), other)
	expectMsgs(t, r)
	r.Step(id(5), other) // id(5) is not a neighbor: nothing to answer on
	expectMsgs(t, r)
	r.NeighborUp(id(5))
	r.Ready()
	r.Advance()
	r.Step(id(5), other)
	expectMsgs(t, r, "5:5@4")
	// Invalid records are dropped without a trace.
	bad := rec(6, 1, 2, 2)
	r.Step(id(2), bad)
	expectMsgs(t, r)
	if _, ok := r.db[id(6)]; ok {
		t.Errorf("invalid record stored")
	}
}

func TestOwnRecordComesBack(t *testing.T) {
	r := New(id(1), "a", 5)
	r.SetLocal(links(2, 3), nil, nil) // seq 6
	r.NeighborUp(id(2))
	r.NeighborUp(id(3))
	r.Ready()
	r.Advance()

	// An echo of what we sent: no re-origination, or echoes would storm.
	r.Step(id(2), r.Local())
	expectMsgs(t, r)
	// An older copy: the sender gets the current one.
	r.Step(id(2), rec(1, 4, 2, 3))
	expectMsgs(t, r, "2:1@6")
	// A newer one, from before a restart: jump past it, tell everyone.
	r.Step(id(3), rec(1, 8))
	if got := r.Local().Seq; got != 9 {
		t.Fatalf("seq %d after hearing of 8, want 9", got)
	}
	if got := r.Local().Links; len(got) != 2 {
		t.Fatalf("re-originated record lost its links: %v", got)
	}
	expectMsgs(t, r, "2:1@9", "3:1@9")
	// Same number, different content: also from before a restart.
	r.Step(id(3), rec(1, 9))
	expectMsgs(t, r, "2:1@:", "3:1@:") // ':' is '0'+10
}

func TestSetLocal(t *testing.T) {
	r := New(id(1), "a", 0)
	r.SetLocal([]Link{{Peer: id(3), Cost: 4}, {Peer: id(2), Cost: 9}, {Peer: id(3), Cost: 2}}, nil, nil)
	want := []Link{{Peer: id(2), Cost: 9}, {Peer: id(3), Cost: 2}}
	if got := r.Local().Links; !slices.Equal(got, want) {
		t.Errorf("links %v, want %v (sorted, duplicates merged into the cheapest)", got, want)
	}
	in := []Connector{{Address: "x"}}
	r.SetLocal(nil, in, nil)
	in[0].Address = "changed"
	if r.Local().Connectors[0].Address != "x" {
		t.Errorf("SetLocal kept the caller's slice")
	}
	before := r.Local()
	tooMany := make([]string, MaxInterests+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprint("t", i)
	}
	for name, set := range map[string]func() error{
		"link to self":       func() error { return r.SetLocal(links(1), nil, nil) },
		"empty address":      func() error { return r.SetLocal(nil, []Connector{{}}, nil) },
		"too many interests": func() error { return r.SetLocal(nil, nil, tooMany) },
	} {
		if err := set(); err == nil {
			t.Errorf("%s: SetLocal took an invalid record", name)
		}
		if got := r.Local(); got.Seq != before.Seq || !slices.Equal(got.Connectors, before.Connectors) {
			t.Errorf("%s: refused SetLocal changed the record: %+v", name, got)
		}
	}
	mustPanic(t, "long name", func() { New(id(1), string(make([]byte, 254)), 0) })
	mustPanic(t, "NeighborUp(self)", func() { r.NeighborUp(id(1)) })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

// TestRestoreAfterReorder plays the race that made records of reachable
// sites disappear with plain deletion: site 5 moves from 3 to 4, and its
// new record arrives before 4's. For a moment 5 looks unreachable and is
// deleted; 4's record then makes it reachable again, and nobody will send
// 5's record a second time.
func TestRestoreAfterReorder(t *testing.T) {
	r := New(id(1), "a", 0)
	r.SetLocal(links(2), nil, nil)
	r.NeighborUp(id(2))
	for _, x := range []Record{rec(2, 1, 1, 3, 4), rec(3, 1, 2, 5), rec(4, 1, 2), rec(5, 1, 3)} {
		r.Step(id(2), x)
	}
	if _, ok := r.Table().Route(id(5)); !ok {
		t.Fatalf("5 unreachable before the move")
	}
	r.Ready()
	r.Advance()

	r.Step(id(2), rec(5, 2, 4)) // 5 now lists only 4; 4 does not list 5 yet
	r.NeighborUp(id(6))         // computes: 5 is unreachable now
	if _, ok := r.db[id(5)]; ok {
		t.Fatalf("record of unreachable 5 still in the database")
	}
	if slices.Contains(msgs(r.Ready().Messages), "6:5@2") {
		t.Fatalf("record of unreachable 5 sent to the new neighbor")
	}
	r.Advance()
	r.Step(id(2), rec(4, 2, 2, 5))
	route, ok := r.Table().Route(id(5))
	if !ok || !slices.Equal(route.Path, []siteid.ID{id(2), id(4), id(5)}) {
		t.Fatalf("route to 5 after the move: %v %v", route, ok)
	}
	if got := r.db[id(5)]; got == nil || got.Seq != 2 {
		t.Fatalf("5 not restored to the database: %v", got)
	}
	// 6 came up while 5 was set aside, so it was never sent 5; 2 was.
	if got := msgs(r.Ready().Messages); !slices.Contains(got, "6:5@2") || slices.Contains(got, "2:5@2") {
		t.Fatalf("restored record sent as %v, want to 6 only", got)
	}
}

func TestTableQueriesCopy(t *testing.T) {
	r := New(id(1), "a", 0)
	r.SetLocal(links(2), []Connector{{Address: "x", Protocol: "tcp", Capacity: 1}}, []string{"t"})
	r.NeighborUp(id(2))
	r.Step(id(2), Record{Site: id(2), Name: "b", Seq: 1, Links: links(1), Connectors: []Connector{{Address: "x"}}})
	tab := r.Table()
	cs := tab.Candidates("x")
	if len(cs) != 2 || cs[0].Site != id(1) || cs[0].Path != nil || cs[1].Site != id(2) {
		t.Fatalf("candidates %+v", cs)
	}
	cs[1].Path[0] = id(9)
	tab.Links(id(2))[0].Cost = 99
	tab.Records()[0].Interests[0] = "changed"
	if tab.Candidates("x")[1].Path[0] != id(2) || tab.Links(id(2))[0].Cost != 1 || tab.Records()[0].Interests[0] != "t" {
		t.Errorf("a returned slice aliases the table")
	}
	if tab.Links(id(7)) != nil {
		t.Errorf("links of an unknown site")
	}
	if _, ok := tab.Route(id(7)); ok {
		t.Errorf("route to an unknown site")
	}
	if p, ok := tab.DisjointPath(id(1), nil); !ok || p != nil {
		t.Errorf("disjoint path to self: %v %v", p, ok)
	}
	if tab.Self() != id(1) {
		t.Errorf("Self")
	}
}

// TestTableConcurrentUse shares one Table between goroutines while the
// router moves on, the way a site hands tables to its data path. Run with
// -race.
func TestTableConcurrentUse(t *testing.T) {
	r := New(id(1), "a", 0)
	r.SetLocal(links(2), []Connector{{Address: "x"}}, nil)
	r.NeighborUp(id(2))
	r.Step(id(2), Record{Site: id(2), Name: "b", Seq: 1, Links: links(1), Connectors: []Connector{{Address: "x"}}})
	tab := r.Table()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				tab.Candidates("x")
				tab.Addresses()
				tab.Sites()
				tab.DisjointPath(id(2), nil)
				tab.Records()
			}
		})
	}
	for i := range 50 {
		r.SetLocal(links(2), []Connector{{Address: "x", Capacity: uint32(i)}}, nil)
		r.Table()
	}
	wg.Wait()
}

// A revoked site leaves the table at once (routes, candidates, interests)
// and no record of it comes back, however new.
func TestRevoke(t *testing.T) {
	r := New(id(1), "a", 0)
	r.NeighborUp(id(2))
	r.SetLocal(links(2), nil, nil)
	r.Step(id(2), rec(2, 1, 1, 3))
	c := rec(3, 1, 2)
	c.Connectors = []Connector{{Address: "orders"}}
	c.Interests = []string{"audit"}
	r.Step(id(2), c)
	r.Ready()
	r.Advance()
	if len(r.Table().Candidates("orders")) != 1 {
		t.Fatal("setup: no candidate")
	}
	r.Revoke(id(3))
	if !r.Ready().TableChanged {
		t.Error("revocation did not change the table")
	}
	tb := r.Table()
	if _, ok := tb.Route(id(3)); ok || len(tb.Candidates("orders")) != 0 || len(tb.Records()) != 2 {
		t.Fatalf("revoked site still in the table: %v", tb.Records())
	}
	if _, ok := r.Seq(id(3)); ok {
		t.Error("revoked record still held")
	}
	r.Advance()
	c.Seq = 1 << 40
	r.Step(id(2), c)
	if rd := r.Ready(); rd.TableChanged || len(rd.Messages) != 0 {
		t.Fatalf("a revoked site's record was taken: %+v", rd)
	}
	if len(r.Table().Candidates("orders")) != 0 {
		t.Fatal("revoked connector is back")
	}
	r.Revoke(id(1)) // itself: nothing
	if _, ok := r.Table().Route(id(2)); !ok {
		t.Error("revoking itself broke the router")
	}
}

// Revoking an operational key drops at once every record it signed, even
// one numbered far above anything its site signs next (a stolen key's
// record), keeps the records of other keys, refuses the key's records
// after, and takes the site's next record signed by another key whatever
// its number.
func TestRevokeKey(t *testing.T) {
	stolen, next, other := [32]byte{1}, [32]byte{2}, [32]byte{3}
	r := New(id(1), "a", 0)
	r.NeighborUp(id(2))
	r.SetLocal(links(2), nil, nil)
	b := rec(2, 1, 1, 3)
	b.Key = other
	r.Step(id(2), b)
	c := rec(3, 1<<40, 2)
	c.Key = stolen
	c.Connectors = []Connector{{Address: "orders"}}
	r.Step(id(2), c)
	r.Ready()
	r.Advance()
	if len(r.Table().Candidates("orders")) != 1 {
		t.Fatal("setup: no candidate")
	}

	r.RevokeKey(stolen)
	if !r.Ready().TableChanged {
		t.Error("revoking a key that signed a record did not change the table")
	}
	r.Advance()
	tb := r.Table()
	if _, ok := tb.Route(id(3)); ok || len(tb.Candidates("orders")) != 0 {
		t.Fatalf("a record of the revoked key is still in the table: %v", tb.Records())
	}
	if _, ok := tb.Route(id(2)); !ok {
		t.Fatal("a record of another key went too")
	}
	if _, ok := r.Seq(id(3)); ok {
		t.Error("the revoked key's record is still held")
	}

	c.Seq++
	r.Step(id(2), c)
	if rd := r.Ready(); rd.TableChanged || len(rd.Messages) != 0 {
		t.Fatalf("a record of the revoked key was taken: %+v", rd)
	}
	fresh := rec(3, 5, 2)
	fresh.Key = next
	r.Step(id(2), fresh)
	if got, ok := r.Seq(id(3)); !ok || got != 5 {
		t.Fatalf("the site's record signed by its next key was not taken: seq %d, %v", got, ok)
	}
	if _, ok := r.Table().Route(id(3)); !ok {
		t.Fatal("the site is not reachable with its record signed by its next key")
	}
	r.RevokeKey(r.Local().Key) // its own key: the caller re-signs
	if _, ok := r.Seq(id(1)); !ok {
		t.Error("revoking its own key dropped the router's own record")
	}
}
