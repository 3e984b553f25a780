package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoLine starts the line a-b-c with an echo service at c and a listener
// for it at a, and returns once a can reach it.
func echoLine(t *testing.T) (a, b, c *site, listen string) {
	t.Helper()
	a, b, c = startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(b)
	b.linkTo(c)
	c.weft("connector", "create", "echo", "--target", echoServer(t, "echo-at-c"))
	listen = a.listen("echo")
	waitFor(t, 10*time.Second, "a to learn that c serves echo", func() bool {
		return strings.Join(a.status().servedAt("echo"), ",") == "c"
	})
	return a, b, c, listen
}

// TestLine is the A-B-C line: A's clients reach C's service through B; A's status
// shows the path; a 1 GiB transfer arrives byte for byte; half-close works.
func TestLine(t *testing.T) {
	a, b, c, listen := echoLine(t)
	// Every site sees the whole line, the sites that accepted a link
	// (b from a, c from b) included: their peers' first records arrive
	// before they have registered the link.
	for _, x := range []*site{b, c} {
		waitFor(t, 10*time.Second, x.name+" to see a, b and c", func() bool {
			st := x.status()
			return st.hasSite("a") && st.hasSite("b") && st.hasSite("c")
		})
	}
	st := a.status()
	for _, s := range st.Sites {
		if s.Name == "c" && (s.Cost != 2 || strings.Join(s.Path, ">") != "b>c") {
			t.Errorf("route to c = cost %d path %v, want cost 2 via b>c", s.Cost, s.Path)
		}
	}
	if got, err := greeting(listen); err != nil || got != "echo-at-c" {
		t.Fatalf("greeting through a = %q, %v", got, err)
	}

	t.Run("1GiB", func(t *testing.T) { transfer(t, listen, 1<<30) })
	t.Run("half-close", func(t *testing.T) { halfClose(t, listen) })

	t.Run("metrics", func(t *testing.T) {
		want := []string{"weft_links_up 2", "weft_link_rtt_seconds{", "weft_link_bytes_total{", "weft_routing_sites 3"}
		var lacks []string
		defer func() {
			if t.Failed() {
				t.Logf("b's /metrics lacks %q", lacks)
			}
		}()
		// Gauges follow events (a record, a heartbeat) that a loaded
		// machine may deliver late: wait for them rather than sample once.
		waitFor(t, 10*time.Second, "b's /metrics to show its links and the network", func() bool {
			resp, err := http.Get(b.adminURL() + "/metrics")
			if err != nil {
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lacks = lacks[:0]
			for _, w := range want {
				if !strings.Contains(string(body), w) {
					lacks = append(lacks, w)
				}
			}
			return len(lacks) == 0
		})
	})
}

// transfer sends n random bytes through listen to the echo service and checks
// that the same bytes come back.
func transfer(t *testing.T, listen string, n int64) {
	conn, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	var sent, got [sha256.Size]byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h := sha256.New()
		src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), n), h)
		if _, err := io.Copy(conn, src); err != nil {
			t.Error("send:", err)
		}
		conn.(*net.TCPConn).CloseWrite()
		copy(sent[:], h.Sum(nil))
	}()
	h := sha256.New()
	m, err := io.Copy(h, r)
	wg.Wait()
	if err != nil {
		t.Fatal("receive:", err)
	}
	copy(got[:], h.Sum(nil))
	if m != n || sent != got {
		t.Fatalf("echoed %d bytes (sha256 %x), sent %d (sha256 %x)", m, got[:8], n, sent[:8])
	}
}

// halfClose checks that a client's FIN reaches the target while the answer still
// flows back: the target reads to EOF, then answers.
func halfClose(t *testing.T, listen string) {
	conn, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	r.ReadString('\n')
	conn.Write([]byte("ping"))
	conn.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "ping" {
		t.Fatalf("after half-close read %q, %v; want the echo then EOF", b, err)
	}
}

// TestTokens: expired, used up, already redeemed and unknown tokens are refused,
// each with its reason.
func TestTokens(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	dir := t.TempDir()
	tok := filepath.Join(dir, "once.yaml")
	a.weft("token", "issue", "--uses", "1", "-o", tok)
	b.weft("link", "create", tok)
	for _, tc := range []struct {
		who  *site
		file string
		want string
	}{
		{c, tok, "used up"},
		{b, tok, "already redeemed"},
	} {
		out, err := tc.who.try("link", "create", tc.file)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s redeeming a spent token: err %v, output %q; want %q", tc.who.name, err, out, tc.want)
		}
	}
	expired := filepath.Join(dir, "expired.yaml")
	a.weft("token", "issue", "--expires", "1ns", "-o", expired)
	if out, err := c.try("link", "create", expired); err == nil || !strings.Contains(out, "expired") {
		t.Errorf("expired token: err %v, output %q", err, out)
	}
	unknown := filepath.Join(dir, "unknown.yaml")
	a.weft("token", "issue", "-o", unknown)
	b2, _ := os.ReadFile(unknown)
	forged := strings.Replace(string(b2), "id: ", "id: 00", 1)
	os.WriteFile(unknown, []byte(forged), 0o600)
	if out, err := c.try("link", "create", unknown); err == nil || !strings.Contains(out, "unknown") {
		t.Errorf("unknown token: err %v, output %q", err, out)
	}
}

// TestFailover: two sites serve the same address; SIGKILL of the one in use sends
// new connections to the other within 2 s.
func TestFailover(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(b, "--cost", "1")
	a.linkTo(c, "--cost", "5")
	b.weft("connector", "create", "svc", "--target", echoServer(t, "b"))
	c.weft("connector", "create", "svc", "--target", echoServer(t, "c"))
	listen := a.listen("svc")
	waitFor(t, 10*time.Second, "a to see svc at b and c", func() bool { return len(a.status().servedAt("svc")) == 2 })
	if got, err := greeting(listen); got != "b" {
		t.Fatalf("cheapest instance should answer: got %q, %v", got, err)
	}
	b.stop(syscall.SIGKILL)
	killed := time.Now()
	var took time.Duration
	waitFor(t, 2*time.Second, "new connections to reach c after b was killed", func() bool {
		got, _ := greeting(listen)
		took = time.Since(killed)
		return got == "c"
	})
	t.Logf("failover to c took %v", took)
	waitFor(t, 5*time.Second, "b to leave a's table", func() bool { return !a.status().hasSite("b") })
}

// TestRestart: a site restarted with its data directory comes back with the same
// ID, its links and its services.
func TestRestart(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	a.linkTo(b)
	b.weft("connector", "create", "svc", "--target", echoServer(t, "b"))
	a.weft("listener", "create", "svc", "--port", "0")
	idBefore := b.status().Site.ID
	for _, s := range []*site{b, a} { // the issuer, then the dialing side
		s.stop(syscall.SIGTERM)
		s.start()
		waitFor(t, 30*time.Second, "the link to be back after restarting "+s.name, func() bool {
			st := a.status()
			return len(st.Links) == 1 && st.Links[0].Status.State == "up" && len(st.servedAt("svc")) == 1
		})
		listen := a.status().Listeners[0].Listen
		if got, err := greeting(listen); got != "b" {
			t.Fatalf("after restarting %s: greeting %q, %v", s.name, got, err)
		}
	}
	if id := b.status().Site.ID; id != idBefore {
		t.Errorf("b's ID changed over a restart: %s -> %s", idBefore, id)
	}
}

// TestLinkDelete: deleting a link at the issuer revokes it: the link goes down at
// once, the other side is told it was revoked and stops dialing, also across a
// restart.
func TestLinkDelete(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	a.linkTo(b)
	waitFor(t, 5*time.Second, "a to see b", func() bool { return a.status().hasSite("b") })
	b.weft("link", "delete", "a")
	waitFor(t, 5*time.Second, "a to lose b", func() bool { return !a.status().hasSite("b") })
	revoked := func() bool {
		st := a.status()
		return len(st.Links) == 1 && st.Links[0].Status.State == "revoked" && strings.Contains(st.Links[0].Status.Error, "deleted at b")
	}
	waitFor(t, 10*time.Second, "a's link to show it was revoked, and why", revoked)
	if n := strings.Count(a.log.String(), "refused by its issuer"); n != 1 {
		t.Errorf("a logged the refusal %d times, want once", n)
	}
	a.stop(syscall.SIGTERM)
	a.start()
	if !revoked() {
		t.Errorf("after a restart, a's link is %+v", a.status().Links)
	}
	if n := strings.Count(b.log.String(), "link refused"); n != 1 {
		t.Errorf("b refused a's revoked certificate %d times, want once: a dialed again", n)
	}
	if strings.Count(b.log.String(), "link up") > 1 {
		t.Error("b accepted a's revoked certificate again")
	}
}

// TestNoConnector: a listener whose address is served nowhere closes each
// connection at once instead of leaving the client hanging.
func TestNoConnector(t *testing.T) {
	a := startSite(t, "a")
	listen := a.listen("nowhere")
	conn, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read %d, %v; want EOF", n, err)
	}
}

// TestBadPeers: garbage and certificates the site did not issue are refused
// without harm to the site.
func TestBadPeers(t *testing.T) {
	a := startSite(t, "a")
	linkAddr, _ := os.ReadFile(filepath.Join(a.dir, "link.addr"))
	c, err := net.Dial("tcp", string(linkAddr))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n\x16\x03\x01garbage"))
	c.Close()
	// A TLS client with no certificate asking for a link is refused in the handshake.
	tc, err := tls.Dial("tcp", string(linkAddr), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"weft-link/1"}})
	if err == nil {
		_, err = tc.Read(make([]byte, 1))
		tc.Close()
	}
	if err == nil {
		t.Error("a link without a client certificate was accepted")
	}
	if _, err := a.try("status"); err != nil {
		t.Fatalf("site did not survive bad peers: %v", err)
	}
}

// TestApply: Listener and Connector resources from one YAML file.
func TestApply(t *testing.T) {
	a := startSite(t, "a")
	f := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(f, []byte(`apiVersion: weft.dev/v1alpha1
kind: Connector
metadata: {name: svc}
spec: {address: svc, target: "`+echoServer(t, "local")+`"}
---
apiVersion: weft.dev/v1alpha1
kind: Listener
metadata: {name: svc}
spec: {address: svc, port: 0}
`), 0o600)
	out := a.weft("apply", "-f", f)
	if !strings.Contains(out, "connector/svc created") || !strings.Contains(out, "listener/svc created") {
		t.Fatalf("apply output: %q", out)
	}
	listen := a.status().Listeners[0].Listen
	if got, err := greeting(listen); got != "local" {
		t.Fatalf("greeting %q, %v", got, err)
	}
}

// TestDataDirectoryInUse: a second `weft site run` on a running site's data
// directory exits at once, naming the process that holds it.
func TestDataDirectoryInUse(t *testing.T) {
	a := startSite(t, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, weftBin, "site", "run", "--name", "a", "--data", a.dir).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatal("the second site did not exit: it waited for the data directory")
	}
	want := fmt.Sprintf("data directory %s is in use by pid %d", a.dir, a.cmd.Process.Pid)
	if err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("second site: %v\n%s\nwant an error saying %q", err, out, want)
	}
	if !a.status().hasSite("a") {
		t.Fatal("the first site stopped answering")
	}
}
