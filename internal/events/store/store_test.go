package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/siteid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var self, c, d = siteid.ID{1}, siteid.ID{3}, siteid.ID{4}

// put is an event published here (Local is self, Publish is set); tests
// change what differs.
func put(source, id string, t int64, dests ...siteid.ID) Put {
	return Put{Entry: Entry{Kind: 't', Subject: "x", Origin: self, Time: t, Payload: []byte(id)}, Source: source, ID: id, Dests: dests, Local: self, Publish: true}
}

func received(p Put) Put {
	p.Publish = false
	return p
}

func puts(t *testing.T, s *Store, ps ...Put) []string {
	t.Helper()
	if err := s.Put(ps); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		var fwd []string
		for _, id := range p.Fwd {
			fwd = append(fwd, fmt.Sprint(id[0]))
		}
		got = append(got, fmt.Sprintf("in %d out %d %v", p.In, p.Out, fwd))
	}
	return got
}

func outs(t *testing.T, s *Store) []string {
	t.Helper()
	var got []string
	if err := s.ReadOut(0, ^uint64(0), func(off uint64, e Entry) bool {
		got = append(got, fmt.Sprintf("%d:%s", off, e.Payload))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func ins(t *testing.T, s *Store, from uint64) []string {
	t.Helper()
	var got []string
	if err := s.ReadIn(from, func(seq uint64, e Entry) bool {
		got = append(got, fmt.Sprintf("%d:%s", seq, e.Payload))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPutDedupRead(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	got := puts(t, s, put("/a", "1", 1, self, c, d), put("/a", "2", 1, self), put("/a", "1", 1, self, c))
	if want := []string{"in 1 out 1 [3 4]", "in 2 out 0 []", "in 0 out 0 []"}; !slices.Equal(got, want) {
		t.Fatalf("put: %q, want %q", got, want)
	}
	if got := outs(t, s); !slices.Equal(got, []string{"1:1"}) {
		t.Errorf("out log %v", got)
	}
	if got := ins(t, s, 1); !slices.Equal(got, []string{"2:2"}) {
		t.Errorf("inbox after 1: %v", got)
	}
	var e Entry
	s.ReadOut(0, 1, func(_ uint64, x Entry) bool { e = x; return true })
	if e.Origin != self || e.Subject != "x" || e.Time != 1 || !slices.Equal(e.Dests, []siteid.ID{c, d}) {
		t.Errorf("out entry %+v", e)
	}
	var first []string
	s.ReadIn(0, func(seq uint64, e Entry) bool { first = append(first, string(e.Payload)); return false })
	if !slices.Equal(first, []string{"1"}) {
		t.Errorf("read stops when fn says so: %v", first)
	}
	// The out entry's destinations got cursors just before it.
	ds, _ := s.Dests()
	if len(ds) != 2 || ds[c].Acked != 0 || ds[d].Acked != 0 {
		t.Errorf("cursors %+v", ds)
	}
}

// TestPutPerDestination: a received event is deduplicated only for this
// site; the other destinations are forwarded every time, so that an event
// coming back around a loop is never dropped by a site that passed it on.
func TestPutPerDestination(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	s.SaveDests(map[siteid.ID]Dest{c: {Acked: 7}}, nil)
	got := puts(t, s, received(put("/o", "a", 1, c)), received(put("/o", "a", 1, self, c, d)), received(put("/o", "a", 1, self, d)))
	if want := []string{"in 0 out 1 [3]", "in 1 out 2 [3 4]", "in 0 out 3 [4]"}; !slices.Equal(got, want) {
		t.Fatalf("put: %q, want %q", got, want)
	}
	ds, _ := s.Dests()
	if ds[c].Acked != 7 || ds[d].Acked != 1 {
		t.Errorf("an existing cursor moved or a new one is misplaced: %+v", ds)
	}
}

// TestPutQueue: a queue entry for a consumer here goes to the queued bucket
// with the queue's cursor created just before it; one to forward gets a
// cursor that names the queue.
func TestPutQueue(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	q := events.QueueSite("jobs")
	mk := func(id string, local siteid.ID) Put {
		p := received(put("/o", id, 1, q))
		p.Kind, p.Subject, p.Local = 'q', "jobs", local
		return p
	}
	got := puts(t, s, mk("1", siteid.ID{}), mk("1", q), mk("2", q), mk("2", q))
	if want := []string{fmt.Sprintf("in 0 out 1 [%d]", q[0]), "in 1 out 0 []", "in 2 out 0 []", "in 0 out 0 []"}; !slices.Equal(got, want) {
		t.Fatalf("put: %q, want %q", got, want)
	}
	ds, _ := s.Dests()
	if !slices.Equal(ds[q].Patterns, []string{"q:jobs"}) {
		t.Errorf("queue destination %+v", ds[q])
	}
	if qs, _ := s.QueueCursors(); !slices.Equal(qs, []string{"jobs"}) {
		t.Errorf("queue cursors %v", qs)
	}
	if v, ok, _ := s.Cursor(QueueCursor("jobs")); !ok || v != 0 {
		t.Errorf("queue cursor %d %v", v, ok)
	}
	var ids []string
	var first Entry
	s.ReadQueued(0, func(seq uint64, e Entry) bool {
		if seq == 1 {
			first = e
		}
		ids = append(ids, string(e.Payload))
		return true
	})
	if !slices.Equal(ids, []string{"1", "2"}) || len(ins(t, s, 0)) != 0 {
		t.Errorf("queued %v, inbox %v", ids, ins(t, s, 0))
	}

	// The consumers left: the first entry goes back to the log, and is
	// taken again when it comes back.
	p := Put{Entry: first, Source: "/o", ID: "1"}
	if err := s.PassOn(&p, 1); err != nil {
		t.Fatal(err)
	}
	if p.Out != 2 || !slices.Equal(p.Fwd, []siteid.ID{q}) {
		t.Errorf("passed on to %d %v", p.Out, p.Fwd)
	}
	if v, _, _ := s.Cursor(QueueCursor("jobs")); v != 1 {
		t.Errorf("queue cursor %d after passing on, want 1", v)
	}
	if got := puts(t, s, mk("1", q)); got[0] != "in 3 out 0 []" {
		t.Errorf("back again: %s", got[0])
	}
}

// TestPutQueueOverflow: an entry for a consumer here that has no room goes
// on, unless it was taken here already: it may be a resend of one a
// consumer here has.
func TestPutQueueOverflow(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	q := events.QueueSite("jobs")
	mk := func(id string, overflow bool) Put {
		p := received(put("/o", id, 1, q))
		p.Kind, p.Subject, p.Local, p.Overflow = 'q', "jobs", q, overflow
		return p
	}
	got := puts(t, s, mk("1", false), mk("1", true), mk("2", true), mk("2", false))
	if want := []string{"in 1 out 0 []", "in 0 out 0 []", fmt.Sprintf("in 0 out 1 [%d]", q[0]), "in 2 out 0 []"}; !slices.Equal(got, want) {
		t.Fatalf("put: %q, want %q", got, want)
	}
}

func TestExpire(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	puts(t, s, put("/a", "1", 10, self, c), put("/a", "2", 10, self, c), put("/a", "3", 30, self, c))
	// Acknowledged up to 1; entries stored before 20 go anyway.
	if err := s.Expire(1, time.Unix(0, 20)); err != nil {
		t.Fatal(err)
	}
	if got := outs(t, s); !slices.Equal(got, []string{"3:3"}) {
		t.Errorf("out after expiry %v", got)
	}
	if got := ins(t, s, 0); !slices.Equal(got, []string{"3:3"}) {
		t.Errorf("inbox after expiry %v", got)
	}
	// The dedup entries of 1 and 2 expired with them.
	if got := puts(t, s, put("/a", "1", 40, self), put("/a", "3", 40, self)); !slices.Equal(got, []string{"in 4 out 0 []", "in 0 out 0 []"}) {
		t.Errorf("dedup after expiry: %q", got)
	}
	// Acknowledged entries go even when young; the heads stay.
	s.Expire(10, time.Unix(0, 0))
	if got := outs(t, s); len(got) != 0 {
		t.Errorf("out after ack expiry %v", got)
	}
}

// TestExpireKeepsOffsets: once Expire has emptied the outbound log and the
// inbox, new entries still get offsets past every earlier one, also after a
// restart. The ledger's head and cursors are offsets: an entry numbered
// from 1 again would sit below a cursor and count as delivered.
func TestExpireKeepsOffsets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	s := open(t, path)
	puts(t, s, put("/a", "1", 10, self, c), put("/a", "2", 10, self, c))
	if err := s.Expire(2, time.Unix(0, 20)); err != nil {
		t.Fatal(err)
	}
	if got := outs(t, s); len(got) != 0 {
		t.Fatalf("out after expiry %v", got)
	}
	if got := puts(t, s, put("/a", "3", 30, self, c)); !slices.Equal(got, []string{"in 3 out 3 [3]"}) {
		t.Errorf("after the log emptied: %q, want in 3 out 3", got)
	}
	if out, in, _ := s.Heads(); out != 3 || in != 3 {
		t.Errorf("heads %d %d, want 3 3", out, in)
	}
	if err := s.Expire(3, time.Unix(0, 40)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if out, in, _ := s.Heads(); out != 3 || in != 3 {
		t.Errorf("heads after restart %d %d, want 3 3", out, in)
	}
	if got := puts(t, s, put("/a", "4", 50, self, c)); !slices.Equal(got, []string{"in 4 out 4 [3]"}) {
		t.Errorf("after restart: %q, want in 4 out 4", got)
	}
}

func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	s := open(t, path)
	puts(t, s, put("/a", "1", 1, self, c), put("/a", "2", 1, self, c))
	s.SaveDests(map[siteid.ID]Dest{c: {Patterns: []string{"t:x"}, Acked: 1}, {4}: {Acked: 2}}, nil)
	s.SaveDests(nil, []siteid.ID{{4}})
	s.SetCursor("sub", 2)
	s.PutConfig("Topic/x", map[string]string{"name": "x"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put([]Put{put("/a", "3", 1, self)}); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}

	s = open(t, path)
	defer s.Close()
	out, in, _ := s.Heads()
	if out != 2 || in != 2 {
		t.Errorf("heads %d %d", out, in)
	}
	ds, _ := s.Dests()
	if len(ds) != 1 || ds[c].Acked != 1 || !slices.Equal(ds[c].Patterns, []string{"t:x"}) {
		t.Errorf("dests %+v", ds)
	}
	if v, ok, _ := s.Cursor("sub"); !ok || v != 2 {
		t.Errorf("cursor %d %v", v, ok)
	}
	var keys []string
	s.Config(func(k string, _ []byte) error { keys = append(keys, k); return nil })
	if !slices.Equal(keys, []string{"Topic/x"}) {
		t.Errorf("config %v", keys)
	}
	if got := puts(t, s, put("/a", "2", 1, self)); got[0] != "in 0 out 0 []" {
		t.Errorf("dedup lost in the restart: %s", got[0])
	}
}

// holdCommits holds the lead (commit.go) until the returned function is
// called, so that writes issued meanwhile queue up for one group.
func holdCommits(t *testing.T, s *Store) (release func()) {
	t.Helper()
	inside, hold := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- s.update(func(*bolt.Tx) error {
			close(inside)
			<-hold
			return nil
		})
	}()
	<-inside
	return func() {
		close(hold)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// queue starts n writers and waits until each is about to write; whoever
// is still between that point and the queue once the leader gathers
// only lands in a later group, so the test asserts a bound, not one group.
func queue(n int, w func(i int)) (wait func()) {
	var started, wg sync.WaitGroup
	started.Add(n)
	wg.Add(n)
	for i := range n {
		go func() {
			defer wg.Done()
			started.Done()
			w(i)
		}()
	}
	started.Wait()
	return wg.Wait
}

func TestConcurrentAppendsShareCommits(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	const n = 50
	var mu sync.Mutex
	txs := map[int]bool{}
	release := holdCommits(t, s)
	wait := queue(n, func(i int) {
		err := s.update(func(tx *bolt.Tx) error {
			mu.Lock()
			txs[tx.ID()] = true
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		if err := s.Put([]Put{put("/a", fmt.Sprint(i), 1, c)}); err != nil {
			t.Error(err)
		}
	})
	release()
	wait()
	if len(txs) > n/2 {
		t.Errorf("%d writers used %d commits", n, len(txs))
	}
	if out, _, _ := s.Heads(); out != n {
		t.Errorf("out head %d, want %d", out, n)
	}
}

// TestIdleWriteCommitsInCaller: a write to an idle store is committed in
// its caller's goroutine, not handed to another and answered back (two
// goroutine switches on every persisted event's way, commit.go).
func TestIdleWriteCommitsInCaller(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	var in string
	if err := s.update(func(*bolt.Tx) error { in = goroutine(); return nil }); err != nil {
		t.Fatal(err)
	}
	if me := goroutine(); in != me {
		t.Errorf("the write ran in %s, its caller is %s", in, me)
	}
}

// goroutine is the calling goroutine's "goroutine N" from its stack trace.
func goroutine() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	id, _, _ := strings.Cut(string(b), " [")
	return id
}

// TestAppliedWithoutReaders: groups logged are applied to the tree after
// applyDelay with nobody waiting for them.
func TestAppliedWithoutReaders(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	for i := range 3 {
		puts(t, s, put("/a", fmt.Sprint(i), 1, self))
		s.mu.Lock()
		want := s.pending[len(s.pending)-1].id
		s.mu.Unlock()
		for deadline := time.Now().Add(10 * time.Second); ; {
			s.mu.Lock()
			applied := s.applied
			s.mu.Unlock()
			if applied >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("put %d: group %d logged, %d applied after 10 s", i, want, applied)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestCloseAnswersQueued: writes racing Close either fail with ErrClosed
// or are answered and in the store after a reopen; Close waits for those
// queued before it.
func TestCloseAnswersQueued(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	s := open(t, path)
	release := holdCommits(t, s)
	var mu sync.Mutex
	var ok []string
	wait := queue(20, func(i int) {
		err := s.Put([]Put{put("/a", fmt.Sprint(i), 1, self)})
		switch {
		case err == nil:
			mu.Lock()
			ok = append(ok, fmt.Sprint(i))
			mu.Unlock()
		case !errors.Is(err, ErrClosed):
			t.Error(err)
		}
	})
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	release()
	wait()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := s.Put([]Put{put("/a", "late", 1, self)}); !errors.Is(err, ErrClosed) {
		t.Errorf("a Put after Close: %v, want ErrClosed", err)
	}
	s = open(t, path)
	defer s.Close()
	var got []string
	if err := s.ReadIn(0, func(_ uint64, e Entry) bool { got = append(got, string(e.Payload)); return true }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ok)
	slices.Sort(got)
	if !slices.Equal(got, ok) {
		t.Errorf("in the store after Close: %v; answered: %v", got, ok)
	}
}

// TestFailedWriteLeavesItsGroup: a write that fails is rolled back alone;
// the others in its transaction are committed.
func TestFailedWriteLeavesItsGroup(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "e.db"))
	defer s.Close()
	boom := errors.New("boom")
	release := holdCommits(t, s)
	errs := make([]error, 10)
	wait := queue(len(errs), func(i int) {
		if i == 3 {
			errs[i] = s.update(func(tx *bolt.Tx) error {
				tx.Bucket(bCursors).Put([]byte("half-done"), u64(1))
				return boom
			})
			return
		}
		errs[i] = s.SetCursor(fmt.Sprint("c", i), uint64(i))
	})
	release()
	wait()
	for i, err := range errs {
		if i == 3 && !errors.Is(err, boom) || i != 3 && err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if _, ok, _ := s.Cursor("half-done"); ok {
		t.Error("the failed write's change was committed")
	}
	if v, ok, _ := s.Cursor("c9"); !ok || v != 9 {
		t.Errorf("c9 = %d %v", v, ok)
	}
}

// FuzzDecodeEntry: a damaged store must give errors, not panics, and what
// decodes survives a round trip (varints need not be minimal in a store only
// weft writes, so the bytes may differ).
func FuzzDecodeEntry(f *testing.F) {
	e := Entry{Kind: 't', Subject: "a.b", Origin: self, Time: -5, Dests: []siteid.ID{c, d}, Payload: []byte("p")}
	f.Add(e.encode())
	f.Add((&Entry{Kind: 'q'}).encode())
	e.Trace = tracectx.Context{TraceID: [16]byte{1}, SpanID: [8]byte{2}, Flags: 1}
	f.Add(e.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		again, err := decodeEntry(e.encode())
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, e)
		}
	})
}

// BenchmarkPut: with SyncAlways a lone writer pays a commit (an fsync) per
// event; many writers (16 per CPU) share commits, so each pays a fraction of
// one. SyncInterval's commits only write to the page cache.
func BenchmarkPut(b *testing.B) {
	for _, mode := range []Sync{SyncAlways, SyncInterval} {
		b.Run(string(mode), func(b *testing.B) { benchmarkPut(b, mode) })
	}
}

func benchmarkPut(b *testing.B, mode Sync) {
	open := func(b *testing.B) *Store {
		s, err := Open(filepath.Join(b.TempDir(), "e.db"), Options{Sync: mode})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	b.Run("serial", func(b *testing.B) {
		s := open(b)
		for i := 0; b.Loop(); i++ {
			if err := s.Put([]Put{put("/b", fmt.Sprint(i), 1, self, c)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A site's store after a burst, as the events benchmark's latency
	// test finds it (bench/README.md): each commit then walks and writes
	// trees of several levels, not the single page of a fresh store.
	b.Run("serial-after-burst", func(b *testing.B) {
		s := open(b)
		payload := bytes.Repeat([]byte("x"), 300)
		id := 0
		for range 300 {
			ps := make([]Put, 100)
			for i := range ps {
				id++
				ps[i] = put("/b", fmt.Sprint(id), 1, self, c)
				ps[i].Payload = payload
			}
			if err := s.Put(ps); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			id++
			p := put("/b", fmt.Sprint(id), 1, self, c)
			p.Payload = payload
			if err := s.Put([]Put{p}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := open(b)
		var n atomic.Int64
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Put([]Put{put("/b", fmt.Sprint(n.Add(1)), 1, self, c)}); err != nil {
					b.Error(err)
				}
			}
		})
	})
}

func TestParseSync(t *testing.T) {
	for _, in := range []string{"always", "interval"} {
		if got, err := ParseSync(in); err != nil || string(got) != in {
			t.Errorf("ParseSync(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "Always", "never", "100ms"} {
		if _, err := ParseSync(in); err == nil || !strings.Contains(err.Error(), `"always"`) {
			t.Errorf("ParseSync(%q): %v, want an error naming the modes", in, err)
		}
	}
	if _, err := Open(filepath.Join(t.TempDir(), "e.db"), Options{Sync: "sometimes"}); err == nil {
		t.Error("Open took an unknown sync mode")
	}
}

// TestSyncInterval: a store that fsyncs on an interval answers a write once
// it is in the file, fsyncs what was committed within an interval, and
// keeps everything through Close and a reopen.
func TestSyncInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	s, err := Open(path, Options{Sync: SyncInterval, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !s.db.NoSync {
		t.Fatal("an interval store fsyncs every commit")
	}
	ps := []Put{put("/s", "1", 1, self, c)}
	if err := s.Put(ps); err != nil {
		t.Fatal(err)
	}
	if !s.dirty.Load() {
		t.Fatal("a commit did not mark the store for the next fsync")
	}
	for deadline := time.Now().Add(10 * time.Second); s.dirty.Load(); {
		if time.Now().After(deadline) {
			t.Fatal("no fsync within 10 s of a commit")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Put([]Put{put("/s", "2", 1, self, c)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.dirty.Load() {
		t.Error("Close left a commit without its fsync")
	}
	s = open(t, path)
	defer s.Close()
	var ids []string
	s.ReadIn(0, func(_ uint64, e Entry) bool { ids = append(ids, string(e.Payload)); return true })
	if !slices.Equal(ids, []string{"1", "2"}) {
		t.Errorf("after reopening: inbox %v, want [1 2]", ids)
	}
}

// TestTracedEntry: an entry keeps its trace context through the store, and
// an untraced one is laid out as before traces were stored.
func TestTracedEntry(t *testing.T) {
	e := Entry{Kind: 't', Subject: "a.b", Origin: self, Time: 7, Dests: []siteid.ID{c}, Payload: []byte("p")}
	plain := e.encode()
	if plain[0] != 't' {
		t.Fatalf("untraced entry starts %#x", plain[0])
	}
	e.Trace = tracectx.Context{TraceID: [16]byte{9}, SpanID: [8]byte{8}, Flags: 1}
	traced := e.encode()
	if len(traced) != len(plain)+tracectx.ContextSize {
		t.Fatalf("traced entry %d bytes, untraced %d", len(traced), len(plain))
	}
	got, err := decodeEntry(traced)
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, e)
	}
	if _, err := decodeEntry(traced[:10]); err == nil {
		t.Error("an entry cut inside its trace context decoded")
	}
}
