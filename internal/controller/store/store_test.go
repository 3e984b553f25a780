package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"weft.dev/weft/internal/controller/compile"
	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
	_ "weft.dev/weft/internal/controller/render/istio"
	"weft.dev/weft/internal/controller/render/rendertest"
	"weft.dev/weft/internal/controller/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open returns a fresh store: SQLite in a temporary directory, or the database
// named by WEFT_TEST_DSN (a scratch PostgreSQL database, emptied first).
func open(t *testing.T) *store.Store {
	t.Helper()
	dsn := os.Getenv("WEFT_TEST_DSN")
	if dsn == "" {
		dsn = "sqlite://" + filepath.Join(t.TempDir(), "weft.db")
	}
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if os.Getenv("WEFT_TEST_DSN") != "" {
		if err := s.Reset(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestObjects(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	p := store.Ref{Kind: store.KindProject, Key: "p1"}
	c := store.Ref{Kind: store.KindCluster, Key: "p1/east"}
	if err := s.Create(ctx, c, p, &model.Cluster{Metadata: model.Metadata{Name: "east"}}); !errors.Is(err, store.ErrParentNotFound) {
		t.Fatalf("create under a missing parent: %v", err)
	}
	if err := s.Create(ctx, p, store.Root, &model.Project{Metadata: model.Metadata{Name: "p1"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, p, store.Root, &model.Project{Metadata: model.Metadata{Name: "p1"}}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	cl := &model.Cluster{Metadata: model.Metadata{Name: "east"}, Spec: model.ClusterSpec{Mesh: "istio"}}
	if err := s.Create(ctx, c, p, cl); err != nil {
		t.Fatal(err)
	}
	var got model.Cluster
	if err := s.Get(ctx, c, &got); err != nil || got.Metadata.ResourceVersion != "1" || got.Spec.Mesh != "istio" {
		t.Fatalf("get = %+v, %v", got, err)
	}
	got.Spec.Locality = "us-east/zone1"
	if err := s.Update(ctx, c, &got); err != nil || got.Metadata.ResourceVersion != "2" {
		t.Fatalf("update: rv %s, %v", got.Metadata.ResourceVersion, err)
	}
	stale := got
	stale.Metadata.ResourceVersion = "1"
	if err := s.Update(ctx, c, &stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	list, err := store.List[model.Cluster](ctx, s, store.KindCluster, p)
	if err != nil || len(list) != 1 || list[0].Spec.Locality != "us-east/zone1" {
		t.Fatalf("list = %v, %v", list, err)
	}
	if _, err := store.List[model.Cluster](ctx, s, store.KindCluster, store.Ref{Kind: store.KindProject, Key: "nope"}); !errors.Is(err, store.ErrParentNotFound) {
		t.Fatalf("list under a missing parent: %v", err)
	}
	if err := s.Delete(ctx, p, ""); !errors.Is(err, store.ErrHasChildren) {
		t.Fatalf("delete a parent: %v", err)
	}
	if err := s.Delete(ctx, c, "1"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	if err := s.Delete(ctx, c, "2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, c, &got); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

// TestConcurrentUpdates checks that of many writers holding one resourceVersion
// exactly one wins.
func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	p := store.Ref{Kind: store.KindProject, Key: "p1"}
	if err := s.Create(ctx, p, store.Root, &model.Project{Metadata: model.Metadata{Name: "p1"}}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			pr := &model.Project{Metadata: model.Metadata{Name: "p1", ResourceVersion: "1"}, Spec: model.ProjectSpec{Description: string(rune('a' + i))}}
			errs <- s.Update(ctx, p, pr)
		}()
	}
	won := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("update: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d updates won, want 1", won)
	}
}

func TestReleaseAndStatus(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	in := rendertest.Input(rendertest.Intent(t, `{"metadata":{"name":"web-orders"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}]}}`))
	states, err := compile.Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := s.SaveRelease(ctx, "p1/shop/v1/g1", states)
	if err != nil || gen != 1 {
		t.Fatalf("release: gen %d, %v", gen, err)
	}
	rels, err := s.Releases(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	west := rels["p1/shop/v1/g1"].States["p1/west/kubernetes"]
	if west == nil || len(west.Objects) != len(states["p1/west/kubernetes"].Objects) || west.Target.Kind != render.TargetKubernetes {
		t.Fatalf("stored release for west = %+v", west)
	}
	o := west.Objects[0]
	if o.Hash != compile.Hash(o.Object) {
		t.Fatalf("stored object's hash changed")
	}
	if err := s.RecordStatus(ctx, store.Status{Target: "p1/west/kubernetes", Ref: o.Ref, State: store.StateFailed, Error: "refused", Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if ap, _ := s.Applied(ctx, "p1/west/kubernetes"); len(ap) != 0 {
		t.Fatalf("a failed object counts as applied: %v", ap)
	}
	if err := s.RecordStatus(ctx, store.Status{Target: "p1/west/kubernetes", Ref: o.Ref, State: store.StateApplied, Attempts: 2, Hash: o.Hash}); err != nil {
		t.Fatal(err)
	}
	ap, err := s.Applied(ctx, "p1/west/kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	// Applied bodies stay stored JSON until a plan needs them.
	got := ap[o.Ref]
	body, berr := got.Body()
	if got.Raw == nil || berr != nil || body == nil || got.Hash != o.Hash || compile.Hash(body) != o.Hash {
		t.Fatalf("applied = %v: body %v, %v", ap, body, berr)
	}
	sts, err := s.Statuses(ctx, "p1/west/kubernetes")
	if err != nil || sts[o.Ref].State != store.StateApplied || sts[o.Ref].Attempts != 2 || sts[o.Ref].Error != "" {
		t.Fatalf("status = %+v, %v", sts[o.Ref], err)
	}
	if err := s.RecordStatus(ctx, store.Status{Target: "p1/west/kubernetes", Ref: o.Ref, State: store.StateDeleted}); err != nil {
		t.Fatal(err)
	}
	if ap, _ := s.Applied(ctx, "p1/west/kubernetes"); len(ap) != 0 {
		t.Fatalf("a deleted object is still applied")
	}
}

func TestTokensAndLeader(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if ok, _ := s.HasAdmin(ctx); ok {
		t.Fatal("a new store has an admin")
	}
	if err := s.AddToken(ctx, "secret", store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if r, err := s.TokenRole(ctx, "secret"); r != store.RoleAdmin || err != nil {
		t.Fatalf("role = %q, %v", r, err)
	}
	if _, err := s.TokenRole(ctx, "other"); !errors.Is(err, store.ErrUnknownToken) {
		t.Fatalf("unknown token: %v", err)
	}
	lctx, release, err := s.Lead(ctx, clock.RealClock{}, 50e6)
	if err != nil {
		t.Fatal(err)
	}
	if lctx.Err() != nil {
		t.Fatal("leadership lost at once")
	}
	release()
}

// TestLeaderHandOver drives two replicas' leadership on one PostgreSQL with
// fake clocks: the standby waits for its clock, the leader notices a lost
// session at its next ping, and the standby then takes over.
func TestLeaderHandOver(t *testing.T) {
	dsn := os.Getenv("WEFT_TEST_DSN")
	if dsn == "" {
		t.Skip("SQLite leads at once: only PostgreSQL has replicas to hand over between")
	}
	ctx := context.Background()
	const every = 2 * time.Second
	a := open(t)
	b, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	clkA := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	clkB := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	within := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	actx, releaseA, err := a.Lead(ctx, clkA, every)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseA()
	type term struct {
		ctx     context.Context
		release func()
		err     error
	}
	bLeads := make(chan term, 1)
	bctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends b's wait if the test fails before b leads
	go func() {
		c, r, err := b.Lead(bctx, clkB, every)
		bLeads <- term{c, r, err}
	}()
	within("the standby to wait for its clock", clkB.HasWaiters)
	select {
	case <-bLeads:
		t.Fatal("the standby leads beside the leader")
	default:
	}

	// The leader's session ends, as when its connection breaks: its lock
	// goes with it, which the leader learns at its next ping.
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pid int
	if err := db.QueryRowContext(ctx, `SELECT pid FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatalf("finding the leader's session: %v", err)
	}
	var ok bool
	if err := db.QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminating the leader's session: %v, %v", ok, err)
	}
	// pg_terminate_backend only signals the backend: until it has exited,
	// its lock is held and its connection may still answer a ping.
	within("the leader's session to end", func() bool {
		var n int
		return db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM pg_stat_activity WHERE pid = $1) + (SELECT count(*) FROM pg_locks WHERE pid = $1)`, pid).Scan(&n) == nil && n == 0
	})
	if actx.Err() != nil {
		t.Fatal("the leader knew of its lost session before its ping")
	}
	within("the leader to ping", clkA.HasWaiters)
	clkA.Step(every)
	select {
	case <-actx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the leader did not notice its lost session at its ping")
	}

	clkB.Step(every)
	var bt term
	select {
	case bt = <-bLeads:
	case <-time.After(10 * time.Second):
		t.Fatal("the standby did not lead at its next try")
	}
	if bt.err != nil || bt.ctx.Err() != nil {
		t.Fatalf("standby's leadership: %v, %v", bt.err, bt.ctx.Err())
	}
	bt.release()
}
