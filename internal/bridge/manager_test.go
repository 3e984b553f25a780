package bridge_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"weft.dev/weft/internal/bridge"
	_ "weft.dev/weft/internal/bridge/nats"
	"weft.dev/weft/internal/events/broker"
	"weft.dev/weft/internal/events/store"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/siteid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lone is a site with no links: the broker's Net.
type lone struct{ t *routing.Table }

func (l lone) Table() *routing.Table { return l.t }
func (lone) Open(context.Context, []siteid.ID, string) (net.Conn, error) {
	return nil, errors.New("no links")
}
func (lone) InterestsChanged() {}

func newManager(t *testing.T, dir string) (*bridge.Manager, func()) {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, "events.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Self: siteid.ID{1}, Net: lone{routing.New(siteid.ID{1}, "s", 0).Table()}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	m, err := bridge.NewManager(bridge.ManagerConfig{Site: "s", Mesh: b, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Run(ctx)
	m.Run(ctx)
	return m, func() {
		cancel()
		m.Wait()
		b.Wait()
		st.Close()
	}
}

// A bridge to a broker that refuses connections retries with backoff and
// says why; it is stored, comes back after a restart, and Delete stops it.
func TestManagerRetriesAndRestores(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	dir := t.TempDir()
	m, stop := newManager(t, dir)
	br := resource.Bridge{Spec: resource.BridgeSpec{Broker: "nats://" + addr, Out: []resource.BridgeOut{{Topic: "a.>", To: "x"}}}}
	br.Name = "b"
	if err := br.Default(); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(br); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		l := m.List()
		return len(l) == 1 && l[0].Status.State == resource.BridgeRetrying && l[0].Status.Retries >= 2 && l[0].Status.Error != ""
	})

	bad := br
	bad.Spec.Broker = "kafka://" + addr
	bad.Spec.In = []resource.BridgeIn{{From: "x", Topic: "not..valid"}}
	if err := m.Put(bad); !errors.Is(err, bridge.ErrInvalid) {
		t.Fatalf("a bad topic: %v, want ErrInvalid", err)
	}
	if l := m.List(); len(l) != 1 || l[0].Spec.Broker != br.Spec.Broker {
		t.Fatalf("a refused Put changed the bridge: %+v", l)
	}
	stop()

	m, stop = newManager(t, dir)
	defer stop()
	if l := m.List(); len(l) != 1 || l[0].Name != "b" {
		t.Fatalf("after a restart: %+v", l)
	}
	if found, err := m.Delete("b"); !found || err != nil {
		t.Fatalf("Delete: %v %v", found, err)
	}
	if l := m.List(); len(l) != 0 {
		t.Fatalf("after Delete: %+v", l)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A bridge whose Out sends an In's events back to the broker subject they
// came from is refused, for topics and queues; one to another subject, or
// of the other kind, is not; a bad queue pattern is refused.
func TestManagerRefusesLoops(t *testing.T) {
	m, stop := newManager(t, t.TempDir())
	defer stop()
	for _, c := range []struct {
		in   resource.BridgeIn
		out  resource.BridgeOut
		loop bool
	}{
		{resource.BridgeIn{From: "s", Topic: "a.b"}, resource.BridgeOut{Topic: "a.>", To: "s"}, true},
		{resource.BridgeIn{From: "s", Queue: "jobs"}, resource.BridgeOut{Queue: "jobs", To: "s"}, true},
		{resource.BridgeIn{From: "s", Topic: "a.b"}, resource.BridgeOut{Topic: "a.>", To: "t"}, false},
		{resource.BridgeIn{From: "s", Topic: "a.b"}, resource.BridgeOut{Topic: "a.c", To: "s"}, false},
		{resource.BridgeIn{From: "s", Topic: "jobs"}, resource.BridgeOut{Queue: "jobs", To: "s"}, false},
	} {
		br := resource.Bridge{Spec: resource.BridgeSpec{Broker: "nats://127.0.0.1:1", In: []resource.BridgeIn{c.in}, Out: []resource.BridgeOut{c.out}}}
		br.Name = "b"
		if err := br.Default(); err != nil {
			t.Fatal(err)
		}
		if err := m.Put(br); errors.Is(err, bridge.ErrInvalid) != c.loop {
			t.Errorf("in %+v out %+v: Put %v, want a loop refused: %v", c.in, c.out, err, c.loop)
		}
	}
	br := resource.Bridge{Spec: resource.BridgeSpec{Broker: "nats://127.0.0.1:1", Out: []resource.BridgeOut{{Queue: "jobs..x", To: "s"}}}}
	br.Name = "b"
	if err := br.Default(); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(br); err == nil {
		t.Error("a bad queue pattern was taken")
	}
}
