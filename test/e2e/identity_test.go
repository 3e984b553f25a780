package e2e

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// On a line a - b - c of real processes, with a stream open from a's
// listener to c's connector: rotating both links' certificates with the
// CLI leaves the stream running, and c revoking itself takes it out of a's
// tables (c's connector and route vanish there), through b, while b and a
// refuse it from then on, a restarted a included.
func TestRotateAndRevoke(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	ab := a.linkTo(b)
	bc := b.linkTo(c)
	c.weft("connector", "create", "echo", "--target", echoServer(t, "echo-at-c"))
	listen := a.listen("echo")
	waitFor(t, 10*time.Second, "a to learn that c serves echo", func() bool {
		return strings.Join(a.status().servedAt("echo"), ",") == "c"
	})
	conn, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	say := func(line string) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintln(conn, line); err != nil {
			t.Fatal(err)
		}
		for {
			got, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream through a, b, c: %v", err)
			}
			if got == line+"\n" {
				return
			}
			if got != "echo-at-c\n" {
				t.Fatalf("got %q, want %q", got, line)
			}
		}
	}
	say("before")
	if out := a.weft("link", "rotate", ab); !strings.Contains(out, "link/"+ab+" rotated") {
		t.Fatalf("rotate: %s", out)
	}
	if out := b.weft("link", "rotate", bc); !strings.Contains(out, "rotated") {
		t.Fatalf("rotate: %s", out)
	}
	say("after both links rotated")
	if out, err := c.try("link", "rotate", bc); err == nil {
		t.Errorf("c rotated a link b dialed: %s", out)
	}

	start := time.Now()
	out := c.weft("revocation", "create", "--reason", "retired", "-o", "yaml")
	if !strings.Contains(out, "statement:") || !strings.Contains(out, "reason: retired") {
		t.Fatalf("revocation create: %s", out)
	}
	waitFor(t, 10*time.Second, "c's connector and route to vanish at a", func() bool {
		st := a.status()
		return len(st.servedAt("echo")) == 0 && !st.hasSite("c")
	})
	t.Logf("revocation at c reached a, two links away, within %v (including CLI round trips)", time.Since(start))
	if list := a.weft("revocation", "list"); !strings.Contains(list, "retired") {
		t.Errorf("a's revocation list: %s", list)
	}
	waitFor(t, 10*time.Second, "b to refuse c's link", func() bool {
		return strings.Contains(b.log.String(), "link refused: the peer site is revoked")
	})
	a.stop(syscall.SIGTERM)
	a.start()
	if list := a.weft("revocation", "list"); !strings.Contains(list, "retired") {
		t.Errorf("a forgot the revocation across a restart: %s", list)
	}
}
