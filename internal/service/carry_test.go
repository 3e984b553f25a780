package service

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/link"
)

// dialEcho sends msg through the listener at addr, half-closes, and
// returns what came back before the far end closed.
func dialEcho(t *testing.T, addr, msg string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	// The target answers only after it read EOF: the half-close must
	// travel end to end while the other direction stays open.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestCarryToRemoteConnector(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	w.link("a", "b", 1)
	w.link("b", "c", 1)
	echo := startEcho(t)
	w.connector("c", tcpConnector("echo", "echo", echo.addr))
	addr := w.listener("a", tcpListener("echo"))

	for i := range 3 {
		got, err := dialEcho(t, addr, fmt.Sprint("hello ", i))
		if want := fmt.Sprint("got hello ", i); err != nil || got != want {
			t.Fatalf("through a, b and c: %q %v, want %q", got, err, want)
		}
	}
	// The connection's slot is given back when it ends.
	waitFor(t, "the connections to end at a", func() bool {
		return w.states("a", "echo")["c"].Connections == 0
	})
	// Each connection counts once in every series of its address, which
	// carry keeps rather than looking them up by label each time.
	met := w.site("a").m.cfg.Metrics
	waitFor(t, "a to count the third connection's bytes", func() bool {
		return testutil.ToFloat64(met.AddressBytes.WithLabelValues("echo", "in")) == float64(3*len("got hello 0"))
	})
	if opened, active, out := testutil.ToFloat64(met.StreamsOpened.WithLabelValues("echo")),
		testutil.ToFloat64(met.StreamsActive.WithLabelValues("echo")),
		testutil.ToFloat64(met.AddressBytes.WithLabelValues("echo", "out")); opened != 3 || active != 0 || out != float64(3*len("hello 0")) {
		t.Errorf("address echo: %v opened, %v active, %v bytes out; want 3, 0, %d", opened, active, out, 3*len("hello 0"))
	}
}

func TestCarryNextCandidateWhenTargetRefuses(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	w.link("a", "b", 1)
	w.link("a", "c", 5) // costlier: tried only after b
	echo := startEcho(t)
	w.connector("b", tcpConnector("echo", "echo", refusedAddr(t)))
	w.connector("c", tcpConnector("echo", "echo", echo.addr))
	addr := w.listener("a", tcpListener("echo"))

	got, err := dialEcho(t, addr, "x")
	if err != nil || got != "got x" {
		t.Fatalf("got %q %v, want the answer from c", got, err)
	}
	st := w.states("a", "echo")
	if st["b"].Errors != 1 || st["c"].Errors != 0 {
		t.Errorf("strikes after b refused: %+v", st)
	}
}

// A candidate whose link stalls while the connection waits for it is not
// waited out: the next candidate is tried meanwhile and takes the
// connection, and the stalled attempt is then cancelled, counted as
// neither a failure nor a connection. Site b plays a stalled peer by
// holding the stream unanswered; the stall notice (link.OnStall) is given
// on cue. ConnectTimeout is longer than the client waits, so only the
// hedge can answer in time.
func TestCarryHedgesStalledCandidate(t *testing.T) {
	stalls := make(chan func(), 4)
	prev := withStallNotice
	withStallNotice = func(ctx context.Context, f func()) context.Context {
		stalls <- f
		return ctx
	}
	t.Cleanup(func() { withStallNotice = prev })
	w := newWorld(t, "a", "b", "c")
	w.link("a", "b", 1)
	w.link("a", "c", 5) // costlier: tried only after b
	echo := startEcho(t)
	w.connector("b", tcpConnector("echo", "echo", echo.addr))
	w.connector("c", tcpConnector("echo", "echo", echo.addr))
	held, cancelled := make(chan struct{}), make(chan struct{})
	w.site("b").fs.SetDeliver(func(st *link.Stream, _ *forward.Header) {
		close(held)
		io.Copy(io.Discard, st) // until a resets it
		close(cancelled)
	})
	w.site("a").m.cfg.ConnectTimeout = time.Hour
	addr := w.listener("a", tcpListener("echo"))

	type answer struct {
		got string
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		got, err := dialEcho(t, addr, "x")
		answered <- answer{got, err}
	}()
	select {
	case <-held:
	case a := <-answered:
		t.Fatalf("answered %q %v before b held the stream", a.got, a.err)
	}
	(<-stalls)() // b's attempt, the first
	if a := <-answered; a.err != nil || a.got != "got x" {
		t.Fatalf("got %q %v, want the answer through c", a.got, a.err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("b's stalled attempt was not cancelled")
	}
	waitFor(t, "the attempts to end at a", func() bool {
		st := w.states("a", "echo")
		return st["b"].Connections == 0 && st["c"].Connections == 0
	})
	if st := w.states("a", "echo"); st["b"].Errors != 0 {
		t.Errorf("the stalled attempt counted as a failure: %+v", st)
	}
}

func TestCarryNoCandidateClosesClient(t *testing.T) {
	w := newWorld(t, "a", "b")
	w.link("a", "b", 1)
	addr := w.listener("a", tcpListener("nowhere"))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read = %d %v, want EOF at once", n, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("client closed after %v", d)
	}

	// Every candidate refuses: closed too, after trying each once.
	w.connector("b", tcpConnector("dead", "dead", refusedAddr(t)))
	addr = w.listener("a", tcpListener("dead"))
	// (The client may see the close as an error of its own half-close.)
	if got, _ := dialEcho(t, addr, "x"); got != "" {
		t.Errorf("all refused: %q, want a closed connection", got)
	}
}

func TestServeStreamRejects(t *testing.T) {
	w := newWorld(t, "a", "b")
	w.link("a", "b", 1)
	echo := startEcho(t)
	w.connector("b", tcpConnector("dead", "dead", refusedAddr(t)))
	one := tcpConnector("one", "one", echo.addr)
	one.Spec.MaxConnections = 1
	w.connector("b", one)
	a, b := w.site("a"), w.site("b")
	open := func(address string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := a.fs.Open(ctx, forward.KindTCP, address, b.fs)
		if err == nil {
			t.Cleanup(func() { st.Close() })
		}
		return err
	}
	for _, tc := range []struct {
		address string
		code    uint16
	}{
		{"nowhere", forward.RejectNoConnector},
		{"dead", forward.RejectRefused},
	} {
		if err := open(tc.address); rejectCode(err) != int(tc.code) {
			t.Errorf("%s: %v, want reject code %d", tc.address, err, tc.code)
		}
	}
	if err := open("one"); err != nil {
		t.Fatalf("first stream to a connector with room: %v", err)
	}
	if err := open("one"); rejectCode(err) != int(forward.RejectSaturated) {
		t.Errorf("second stream past MaxConnections 1: %v, want saturated", err)
	}
	// A changed spec keeps counting the connections already open.
	one.Spec.Capacity = 5
	w.connector("b", one)
	if err := open("one"); rejectCode(err) != int(forward.RejectSaturated) {
		t.Errorf("after a spec change: %v, want saturated", err)
	}
}

// TestDepartedSitesLeaveTheEjectionCap: of twenty sites serving an
// address, seventeen leave the network. Two of the three left refuse every
// connection. The ejection cap (10%, at least one) must be taken of the
// three sites that remain: only one of the two may be ejected. A Picker
// that remembered the departed sites would count twenty and eject both,
// leaving one site for all the traffic.
func TestDepartedSitesLeaveTheEjectionCap(t *testing.T) {
	names := []string{"a"}
	for i := range 20 {
		names = append(names, fmt.Sprintf("s%02d", i))
	}
	w := newWorld(t, names...)
	echo := startEcho(t)
	dead := refusedAddr(t)
	for _, n := range names[1:] {
		w.link("a", n, 1)
		target := echo.addr
		if n == "s00" || n == "s01" {
			target = dead
		}
		w.connector(n, tcpConnector("svc", "svc", target))
	}
	addr := w.listener("a", tcpListener("svc"))
	if got, err := dialEcho(t, addr, "x"); err != nil || got != "got x" {
		t.Fatalf("first connection: %q %v", got, err)
	}
	for _, n := range names[4:] {
		w.unlink("a", n)
	}
	if n := len(w.states("a", "svc")); n != 3 {
		t.Fatalf("a balances over %d sites, want 3", n)
	}
	failing := func(s balanceState) bool { return s.Status == "ejected" || s.Errors >= 5 }
	for i := 0; ; i++ {
		st := w.states("a", "svc")
		if failing(st["s00"]) && failing(st["s01"]) {
			break
		}
		if i == 500 {
			t.Fatalf("the refusing sites did not fail five times in a row: %+v", st)
		}
		if got, err := dialEcho(t, addr, "x"); err != nil || got != "got x" {
			t.Fatalf("connection %d: %q %v", i, got, err)
		}
	}
	st := w.states("a", "svc")
	if st["s00"].Status == "ejected" && st["s01"].Status == "ejected" {
		t.Errorf("both refusing sites ejected of three: the departed sites still count, %+v", st)
	}
}
