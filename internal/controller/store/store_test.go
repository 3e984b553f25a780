package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

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
	if got := ap[o.Ref]; err != nil || got.Object == nil || got.Hash != o.Hash || compile.Hash(got.Object) != o.Hash {
		t.Fatalf("applied = %v, %v", ap, err)
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
	lctx, release, err := s.Lead(ctx, 50e6)
	if err != nil {
		t.Fatal(err)
	}
	if lctx.Err() != nil {
		t.Fatal("leadership lost at once")
	}
	release()
}
