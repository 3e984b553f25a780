// Package e2e runs real weft processes on loopback: sites linked by tokens, services
// across them, SIGKILL and restarts. Nothing is mocked.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"weft.dev/weft/internal/child"
	"weft.dev/weft/internal/logbuf"
)

// weftBin is the weft binary built once for the whole package.
var weftBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weft-e2e-bin-")
	if err != nil {
		panic(err)
	}
	weftBin = filepath.Join(dir, "weft")
	args := []string{"build", "-o", weftBin}
	if os.Getenv("WEFT_E2E_RACE") != "" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "weft.dev/weft/cmd/weft")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building weft:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// site is one `weft site run` process.
type site struct {
	t    *testing.T
	name string
	dir  string
	args []string
	cmd  *exec.Cmd
	log  *logbuf.Buffer
	done <-chan struct{} // closed once cmd has exited
}

// startSite starts a site with a fresh data directory. Links keep the
// default heartbeat: no test here freezes a peer (a killed site's sockets
// close, so its links fall at once), and with 200 ms heartbeats the
// detector learnt a 330 ms limit and, at load average 20, took a 591 ms
// stall of a loaded peer for death in the middle of TestLine's transfer.
// Freezing is bench/failover's and the link package's subject.
func startSite(t *testing.T, name string, extra ...string) *site {
	t.Helper()
	s := &site{t: t, name: name, dir: filepath.Join(t.TempDir(), name), log: &logbuf.Buffer{}}
	s.args = append([]string{"site", "run", "--name", name, "--data", s.dir, "--log-level", "debug"}, extra...)
	s.start()
	t.Cleanup(func() {
		s.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("log of site %s:\n%s", s.name, s.log.String())
		}
	})
	return s
}

func (s *site) start() {
	s.t.Helper()
	os.Remove(filepath.Join(s.dir, "admin.addr"))
	s.cmd = exec.Command(weftBin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// Through child.Start, the site dies with this test binary even when
	// that is SIGKILLed, instead of holding its ports and data directory.
	p, err := child.Start(s.cmd)
	if err != nil {
		s.t.Fatal(err)
	}
	s.done = p.Done()
	waitFor(s.t, 15*time.Second, "site "+s.name+" ready", func() bool {
		b, err := os.ReadFile(filepath.Join(s.dir, "admin.addr"))
		if err != nil {
			return false
		}
		resp, err := http.Get("http://" + string(b) + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// stop ends the process with sig and waits for it.
func (s *site) stop(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("site %s did not stop on %v", s.name, sig)
	}
}

func (s *site) adminURL() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "admin.addr"))
	if err != nil {
		s.t.Fatal(err)
	}
	return "http://" + string(b)
}

// weft runs the CLI against this site and returns stdout, failing the test on error.
func (s *site) weft(args ...string) string {
	s.t.Helper()
	out, err := s.try(args...)
	if err != nil {
		s.t.Fatalf("weft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// try runs the CLI and returns its output (stdout then stderr) and error.
func (s *site) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, append([]string{"--site", s.dir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String() + stderr.String(), err
}

// linkTo makes a link from s to issuer and returns its name.
func (s *site) linkTo(issuer *site, extra ...string) string {
	s.t.Helper()
	tok := filepath.Join(s.t.TempDir(), "token.yaml")
	issuer.weft("token", "issue", "--file", tok)
	out := s.weft(append([]string{"link", "create", tok, "-o", "name"}, extra...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[0]
}

type status struct {
	Site  struct{ ID, Name string }
	Links []struct {
		Metadata struct{ Name string }
		Spec     struct{ Cost int }
		Status   struct {
			Peer, PeerName, State, RTT, Error string
			Inbound                           bool
		}
	}
	Sites []struct {
		ID, Name string
		Cost     int
		Path     []string
	}
	Addresses []struct {
		Address string
		Sites   []struct {
			Name string
			Cost int
		}
	}
	Listeners []struct {
		Metadata struct{ Name string }
		Listen   string
	}
}

func (s *site) status() status {
	s.t.Helper()
	var st status
	if err := json.Unmarshal([]byte(s.weft("status", "-o", "json")), &st); err != nil {
		s.t.Fatal(err)
	}
	return st
}

// servedAt lists the sites that s sees serving address.
func (st status) servedAt(address string) []string {
	var out []string
	for _, a := range st.Addresses {
		if a.Address == address {
			for _, s := range a.Sites {
				out = append(out, s.Name)
			}
		}
	}
	return out
}

func (st status) hasSite(name string) bool {
	for _, s := range st.Sites {
		if s.Name == name {
			return true
		}
	}
	return false
}

// listen creates a listener for address at s and returns where it listens.
func (s *site) listen(address string) string {
	s.t.Helper()
	var v struct{ Listen string }
	if err := json.Unmarshal([]byte(s.weft("listener", "create", address, "--port", "0", "-o", "json")), &v); err != nil {
		s.t.Fatal(err)
	}
	return v.Listen
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// echoServer answers every connection by echoing it, after a greeting line
// naming the server, so that tests can see which instance answered.
func echoServer(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, name, ln)
	return ln.Addr().String()
}

// serveEcho serves echoServer's protocol on ln until the test ends.
func serveEcho(t *testing.T, name string, ln net.Listener) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				fmt.Fprintf(c, "%s\n", name)
				io.Copy(c, c)
			}()
		}
	}()
}

// greeting connects to addr and returns the first line the far end sends.
func greeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}
