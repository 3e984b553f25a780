package vl3

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"weft.dev/weft/internal/siteid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type pipeStream struct{ net.Conn }

func (pipeStream) Confirm() error { return nil }

func newTestManager(t *testing.T, self siteid.ID) *Manager {
	t.Helper()
	m, err := NewManager(Config{Self: self, Dir: t.TempDir(), Announce: func() {},
		Open:   func(context.Context, string, siteid.ID) (net.Conn, error) { return nil, io.ErrClosedPipe },
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// A peer's malformed or spoofed packets are dropped and counted, and the
// stream goes on.
func TestServeStreamDrops(t *testing.T) {
	self, peer := id(1), id(2)
	m := newTestManager(t, self)
	m.TableChanged([]Announcement{
		ann(1, "blue", "100.100.0.0/16", "100.100.1.0/24"),
		ann(2, "blue", "100.100.0.0/16", "100.100.2.0/24"),
	}, nil)
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.ServeStream(pipeStream{b}, "blue", peer)
	}()
	var frames []byte
	frames = AppendFrame(frames, []byte{0x45, 0, 0})                               // malformed
	frames = AppendFrame(frames, ipv4("100.100.3.9", "100.100.1.5", 10))           // source not the peer's
	frames = AppendFrame(frames, ipv4("100.100.2.9", "100.100.1.5", 10))           // not attached here
	frames = AppendFrame(frames, append(ipv4("100.100.2.9", "100.100.1.5", 0), 1)) // total length off by one
	if _, err := a.Write(frames); err != nil {
		t.Fatal(err)
	}
	a.Close()
	<-done
	for reason, want := range map[string]float64{dropMalformed: 2, dropSpoofed: 1, dropNoAttachment: 1} {
		if got := testutil.ToFloat64(m.dropped.WithLabelValues(reason)); got != want {
			t.Errorf("dropped %s = %v, want %v", reason, got, want)
		}
	}
}

// The state file keeps networks, prefixes and addresses across restarts.
func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	n := Network{Name: "blue", MTU: 1400}
	n.CIDR = ann(1, "blue", "100.100.0.0/16", "").CIDR
	n.Prefix = ann(1, "blue", "100.100.0.0/16", "100.100.7.0/24").Prefix
	n.Attachments = []Attachment{{Name: "app", Netns: "app", IP: n.Prefix.Addr().Next()}}
	if err := saveState(dir, []Network{n}); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(dir)
	if err != nil || len(got) != 1 || got[0].Prefix != n.Prefix || got[0].Attachments[0] != n.Attachments[0] {
		t.Fatalf("loaded %+v, %v", got, err)
	}
	p := got[0].pool()
	if a, _ := p.Allocate(n.Attachments[0].IP); a.IsValid() {
		t.Fatalf("%s handed out twice", a)
	}
}

// Refused creates and attachments leave the site as it was.
func TestRefusals(t *testing.T) {
	m := newTestManager(t, id(1))
	m.TableChanged([]Announcement{ann(2, "blue", "100.100.0.0/16", "100.100.2.0/24")}, nil)
	if err := m.Create(Network{Name: "blue", CIDR: netip.MustParsePrefix("100.101.0.0/16")}); !errors.Is(err, ErrConflict) {
		t.Errorf("create with another site's name and another CIDR: %v", err)
	}
	if err := m.Create(Network{Name: "Blue", CIDR: netip.MustParsePrefix("100.101.0.0/16")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("create with a bad name: %v", err)
	}
	if _, err := m.Attach("blue", Attachment{Netns: "weft-no-such-namespace"}, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("attach to a missing namespace: %v", err)
	}
	if err := m.Detach("blue", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("detach from a network not held: %v", err)
	}
	if n := m.List(); len(n) != 0 {
		t.Errorf("after refusals the site holds %+v", n)
	}
}
