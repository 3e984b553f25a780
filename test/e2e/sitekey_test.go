package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/apitype"
)

// On a line a - b - c of real processes with a stream open from a's
// listener to c's connector: rotating the site keys of the transit b and
// of the egress c with the CLI, revoking the previous keys, keeps the
// stream flowing; a takes both revocations, refuses none of the new
// records (they verify with the new keys) and still routes to c, and a new
// stream is sealed to c's new seal key. c restarted with its old, revoked
// key file restored makes a new key, keeps its ID and is reached again.
func TestSiteKeyRotation(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(b)
	b.linkTo(c)
	c.weft("connector", "create", "echo", "--target", echoServer(t, "echo-at-c"))
	listen := a.listen("echo")
	waitFor(t, 10*time.Second, "a to learn that c serves echo", func() bool {
		return strings.Join(a.status().servedAt("echo"), ",") == "c"
	})
	say := lineStream(t, listen)
	say("before")
	oldKeyC, err := os.ReadFile(filepath.Join(c.dir, "operational.key"))
	if err != nil {
		t.Fatal(err)
	}
	previous := map[string]string{}
	for _, s := range []*site{b, c} {
		var got apitype.KeyRotation
		if err := json.Unmarshal([]byte(s.weft("site", "rotate-key", "--revoke-previous", "-o", "json")), &got); err != nil || !got.Revoked || got.Key == got.Previous {
			t.Fatalf("rotate-key at %s: %v %+v", s.name, err, got)
		}
		previous[s.name] = got.Previous
		say("after rotating " + s.name)
	}
	waitFor(t, 10*time.Second, "a to take both revocations", func() bool {
		list := a.weft("revocation", "list", "-o", "json")
		return strings.Contains(list, previous["b"]) && strings.Contains(list, previous["c"])
	})
	say("after both revocations reached a")
	for _, reason := range []string{"bad-cert", "bad-signature", "key-mismatch", "revoked-key"} {
		if n := a.metric("weft_records_rejected_total", `reason="`+reason+`"`); n != 0 {
			t.Errorf("a refused %v records for %s", n, reason)
		}
	}
	if got := strings.Join(a.status().servedAt("echo"), ","); got != "c" {
		t.Fatalf("a sees echo at %q", got)
	}
	lineStream(t, listen)("a new stream, sealed to c's new key")

	// c is restarted with its revoked key restored from a backup.
	id := c.status().Site.ID
	c.stop(syscall.SIGTERM)
	if err := os.WriteFile(filepath.Join(c.dir, "operational.key"), oldKeyC, 0o600); err != nil {
		t.Fatal(err)
	}
	c.start()
	if c.status().Site.ID != id {
		t.Fatal("c's ID changed")
	}
	if now, _ := os.ReadFile(filepath.Join(c.dir, "operational.key")); string(now) == string(oldKeyC) {
		t.Fatal("c kept its revoked key")
	}
	waitFor(t, 15*time.Second, "a to reach c again", func() bool {
		return tryLine(listen, "after c restarted") == nil
	})
}

// lineStream opens a stream to listen and returns a function that sends a
// line on it and waits for its echo (skipping the echo server's greeting).
func lineStream(t *testing.T, listen string) func(string) {
	conn, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := bufio.NewReader(conn)
	return func(line string) {
		t.Helper()
		if err := sayLine(conn, r, line); err != nil {
			t.Fatalf("stream through a, b, c: %v", err)
		}
	}
}

func sayLine(conn net.Conn, r *bufio.Reader, line string) error {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(conn, line); err != nil {
		return err
	}
	for {
		got, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if got == line+"\n" {
			return nil
		}
		if !strings.HasPrefix(got, "echo-at-") {
			return fmt.Errorf("got %q, want %q", got, line)
		}
	}
}

// tryLine sends one line on a new stream.
func tryLine(listen, line string) error {
	conn, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	return sayLine(conn, bufio.NewReader(conn), line)
}
