package service

import (
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/resource"
)

// TestCloseEndsEverything: with a TCP connection carried to another site,
// an HTTP request held at a target and a hedged request racing, closing
// the Managers ends all of it, and no goroutine runs the package's code
// afterwards: not the accept loops, carried connections, streams being
// served, hedged copies or the stream server.
func TestCloseEndsEverything(t *testing.T) {
	w := newWorld(t, "a", "b", "c")
	w.link("a", "b", 1)
	w.link("a", "c", 2)
	echo := startEcho(t)
	atB, atC := startBackend(t, "at-b"), startBackend(t, "at-c")
	w.connector("b", tcpConnector("echo", "echo", echo.addr))
	w.connector("b", httpConnector("web", "web", atB.addr))
	w.connector("c", httpConnector("web", "web", atC.addr))
	tcpAddr := w.listener("a", tcpListener("echo"))
	url := "http://" + w.listener("a", httpListener("web", ""))
	hedged := w.listener("a", func() resource.Listener {
		l := httpListener("web", resource.HedgeAlways)
		l.Name = "web-hedged"
		return l
	}())
	slowUntilCancelled(atB)
	slowUntilCancelled(atC)

	// A TCP connection that stays open: the echo target waits for EOF.
	conn, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "open")
	waitFor(t, "the connection to reach the target", func() bool { return echo.conns.Load() == 1 })

	client := newClient(t)
	errs := make(chan error, 2)
	for _, u := range []string{url, "http://" + hedged} {
		go func() {
			_, _, err := get(client, u)
			errs <- err
		}()
	}
	waitFor(t, "the requests to be held at the targets", func() bool {
		return atB.hits.Load()+atC.hits.Load() == 3 // one plain, two hedged copies
	})

	if packageGoroutines() == "" {
		t.Fatal("the goroutine check sees none of the package's goroutines while they run")
	}
	// b, where the connection ends, closes first: it alone must end it.
	w.site("b").m.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Errorf("carried connection after b closed: %d %v, want it closed", n, err)
	}
	w.site("a").m.Close()
	w.site("c").m.Close()
	for range 2 {
		// Closed connection or a 502 from the proxy: either way, now.
		select {
		case <-errs:
		case <-time.After(5 * time.Second):
			t.Fatal("a request outlived Close")
		}
	}
	waitFor(t, "no goroutine to run the package's code", func() bool {
		return packageGoroutines() == ""
	})
	if _, err := w.site("a").m.SetListener(tcpListener("late")); err == nil {
		t.Error("SetListener after Close succeeded")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// packageGoroutines returns the stacks of goroutines with a frame in the
// package's own (non-test) code.
func packageGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, line := range strings.Split(g, "\n") {
			line = strings.TrimSpace(line)
			if strings.Contains(line, "/internal/service/") && !strings.Contains(line, "_test.go:") {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}
