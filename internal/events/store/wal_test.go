package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// logged reads the log beside path and the last group its tree has.
func logged(t *testing.T, path string) (gs []group, applied uint64) {
	t.Helper()
	b, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if gs, err = readWAL(bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bWAL); b != nil && len(b.Get([]byte("applied"))) == 8 {
			applied = binary.BigEndian.Uint64(b.Get([]byte("applied")))
		}
		return nil
	})
	return gs, applied
}

// TestReplay: groups in the log that the tree lacks (a crash between the
// answer and applyLoop) are applied at open, in order, with their dedup keys;
// a torn record after them is dropped and the log written on from there.
func TestReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	s := open(t, path)
	puts(t, s, put("/a", "1", 1, self, c))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What the next two Puts would have logged, as a crash before
	// applyLoop leaves them, and half of a third.
	_, applied := logged(t, path)
	var buf []byte
	for i, id := range []string{"2", "3"} {
		g := &group{id: applied + 1 + uint64(i)}
		p := put("/a", id, 1, self, c)
		decide(testKV{g: g, seq: uint64(i) + 1}, &p)
		buf = g.append(buf)
	}
	torn := (&group{id: applied + 3, ops: []op{{iIn, u64(9), []byte("torn")}}}).append(nil)
	buf = append(buf, torn[:len(torn)-2]...)
	if err := os.WriteFile(path+"-wal", buf, 0o600); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	if got, want := ins(t, s, 0), []string{"1:1", "2:2", "3:3"}; !slices.Equal(got, want) {
		t.Errorf("inbox after replay %v, want %v", got, want)
	}
	if got, want := outs(t, s), []string{"1:1", "2:2", "3:3"}; !slices.Equal(got, want) {
		t.Errorf("outbound log after replay %v, want %v", got, want)
	}
	if got := puts(t, s, put("/a", "3", 1, self, c), put("/a", "4", 1, self, c)); !slices.Equal(got, []string{"in 0 out 0 []", "in 4 out 4 [3]"}) {
		t.Errorf("after replay: %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if gs, _ := logged(t, path); len(gs) != 1 || len(gs[0].ops) == 0 {
		t.Errorf("log after the torn record: %d groups, want the one written since", len(gs))
	}
	s = open(t, path)
	defer s.Close()
	if got := ins(t, s, 0); len(got) != 4 {
		t.Errorf("inbox after a second open %v", got)
	}
}

// testKV decides a Put on an empty tree whose next keys are seq.
type testKV struct {
	g   *group
	seq uint64
}

// has says the destination cursors are there and dedup keys are not.
func (k testKV) has(b byte, _ []byte) bool { return b == iDests || b == iCursors }
func (k testKV) put(b byte, key, v []byte) error {
	k.g.ops = append(k.g.ops, op{b, key, v})
	return nil
}
func (k testKV) next(byte) (uint64, error) { return k.seq + 1, nil }

// TestPendingDedup: a Put decided while the one before is still only in the
// log sees its dedup key, destination cursors and heads.
func TestPendingDedup(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	for i := range 200 {
		want := []string{fmt.Sprintf("in %d out %d [3]", i+1, i+1), "in 0 out 0 []"}
		if got := puts(t, s, put("/a", fmt.Sprint(i), 1, self, c)); got[0] != want[0] {
			t.Fatalf("put %d: %v, want %v", i, got, want[:1])
		}
		if got := puts(t, s, put("/a", fmt.Sprint(i), 1, self, c)); got[0] != want[1] {
			t.Fatalf("retry of put %d: %v, want %v", i, got, want[1:])
		}
	}
	ds, err := s.Dests()
	if err != nil || len(ds) != 1 || ds[c].Acked != 0 {
		t.Errorf("dests %+v %v", ds, err)
	}
}

// TestOpensStoreWithoutLog: a store written before the log existed
// (testdata/v0.db, by main at a980c6e) opens with its entries, cursors and
// dedup keys, and numbers on from them.
func TestOpensStoreWithoutLog(t *testing.T) {
	b, err := os.ReadFile("testdata/v0.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "e.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	defer s.Close()
	if got, want := ins(t, s, 0), []string{"1:1", "2:2", "3:3"}; !slices.Equal(got, want) {
		t.Errorf("inbox %v, want %v", got, want)
	}
	if v, ok, _ := s.Cursor("sub"); !ok || v != 1 {
		t.Errorf("cursor %d %v", v, ok)
	}
	if got := puts(t, s, put("/a", "3", 1, self, c), put("/a", "4", 1, self, c)); !slices.Equal(got, []string{"in 0 out 0 []", "in 4 out 4 [3]"}) {
		t.Errorf("after opening: %v", got)
	}
}

// TestKilledAfterAnswer: a process killed (SIGKILL) while Putting from
// several goroutines has every Put it answered in the store when it opens
// again, each writer's in order, and a publisher's retry of one is dropped.
func TestKilledAfterAnswer(t *testing.T) {
	if dir := os.Getenv("WEFT_STORE_KILL_CHILD"); dir != "" {
		putUntilKilled(dir, Sync(os.Getenv("WEFT_STORE_KILL_SYNC")))
		return
	}
	for _, mode := range []Sync{SyncAlways, SyncInterval} {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestKilledAfterAnswer$")
			cmd.Env = append(os.Environ(), "WEFT_STORE_KILL_CHILD="+dir, "WEFT_STORE_KILL_SYNC="+string(mode))
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			answered := map[int][]int{} // writer -> ids answered, in order
			sc := bufio.NewScanner(stdout)
			// Answers printed before the kill, read after it, count too.
			for n := 0; sc.Scan(); n++ {
				if n == 2000 {
					cmd.Process.Signal(syscall.SIGKILL)
				}
				var w, id int
				if _, err := fmt.Sscanf(sc.Text(), "%d %d", &w, &id); err != nil {
					t.Fatalf("child said %q", sc.Text())
				}
				answered[w] = append(answered[w], id)
			}
			cmd.Wait()
			if len(answered) == 0 {
				t.Fatal("the child answered nothing")
			}
			path := filepath.Join(dir, "e.db")
			gs, applied := logged(t, path)
			t.Logf("at the kill: %d groups logged, the tree had up to %d", len(gs), applied)

			s, err := Open(path, Options{Sync: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			stored := map[int][]int{}
			s.ReadIn(0, func(_ uint64, e Entry) bool {
				w, id, _ := strings.Cut(string(e.Payload), "/")
				wi, _ := strconv.Atoi(w)
				ii, _ := strconv.Atoi(id)
				stored[wi] = append(stored[wi], ii)
				return true
			})
			for w, ids := range answered {
				if got := stored[w][:min(len(ids), len(stored[w]))]; !slices.Equal(got, ids) {
					t.Fatalf("writer %d: answered %d puts, the store has %d, first difference near %v", w, len(ids), len(stored[w]), firstDiff(got, ids))
				}
				last := fmt.Sprint(w, "/", ids[len(ids)-1])
				if got := puts(t, s, put("/k", last, 1, self, c)); got[0] != "in 0 out 0 []" {
					t.Errorf("retry of %s after the restart: %s", last, got[0])
				}
			}
		})
	}
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// putUntilKilled is TestKilledAfterAnswer's child: four writers Put events
// "writer/n" and print "writer n" once each is answered.
func putUntilKilled(dir string, mode Sync) {
	s, err := Open(filepath.Join(dir, "e.db"), Options{Sync: mode})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprint(w, "/", i)
				p := put("/k", id, 1, self, c)
				p.Payload = []byte(id)
				if err := s.Put([]Put{p}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintln(out, w, i)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// FuzzReadWAL: a damaged log gives groups or an error, never a panic or an
// allocation beyond its size, and what decodes survives a round trip.
func FuzzReadWAL(f *testing.F) {
	g := &group{id: 7}
	p := put("/a", "1", 1, self, c)
	decide(testKV{g: g}, &p)
	f.Add(g.append(nil))
	f.Add(g.append(g.append(nil))[:50])
	f.Add([]byte{0, 0, 0, 9, 0, 0, 0, 0, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		gs, err := readWAL(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var again []byte
		for i := range gs {
			again = gs[i].append(again)
		}
		gs2, err := readWAL(bytes.NewReader(again), int64(len(again)))
		if err != nil || len(gs2) != len(gs) {
			t.Fatalf("re-encoded %d groups read back as %d: %v", len(gs), len(gs2), err)
		}
		for i := range gs {
			if gs[i].id != gs2[i].id || len(gs[i].ops) != len(gs2[i].ops) {
				t.Fatalf("group %d changed in a round trip", i)
			}
		}
	})
}
