// Package envtest starts real infrastructure for tests: kube-apiserver with
// its own etcd, PostgreSQL and BIND, each on loopback ports chosen free at
// start and stopped by t.Cleanup.
//
// A test that needs a missing binary is skipped with a message naming the
// install script, unless the environment variable CI is set: in CI a missing
// binary is a broken setup and fails the test. .ci/install-controller-deps.sh
// installs everything.
package envtest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/child"
)

const installHint = "run .ci/install-controller-deps.sh"

// need returns the first existing executable among candidates (absolute
// paths or names looked up in PATH), or skips the test (fails it under CI).
func need(t testing.TB, what string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("envtest: %s not found (tried %q) and CI is set: %s", what, candidates, installHint)
	}
	t.Skipf("envtest: %s not found (tried %q): %s", what, candidates, installHint)
	return ""
}

// freePort returns a loopback port that was free for both TCP and UDP a
// moment ago. Another process may take it before the server binds it; the
// window is short and servers fail loudly if it happens.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("envtest: finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue // UDP side taken: BIND needs both
		}
		u.Close()
		return port
	}
	t.Fatal("envtest: no port free for both TCP and UDP")
	return 0
}

// onFreePorts runs up, which chooses its server's ports with freePort,
// starts it and waits for it, until the server keeps its ports: freePort
// leaves a moment in which another process (a test package running in
// parallel) can take one.
func onFreePorts(t testing.TB, up func() (ready bool)) {
	t.Helper()
	for range 5 {
		if up() {
			return
		}
	}
	t.Fatal("envtest: five servers in a row lost a port to another process")
}

// process is a server started by a test. Its output goes to a log file that
// is printed when the server fails to come up.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // exit status; read after done is closed
}

// start runs argv with its output in logPath. cred, when not nil, runs it as
// another user (PostgreSQL refuses to run as root).
func start(t testing.TB, name, logPath string, cred *syscall.Credential, argv ...string) *process {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("envtest: %s log: %v", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so that stopping the server also stops anything
	// it forked, and a terminal's ^C does not race our cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	// child.Start also has the kernel kill the server should the test
	// binary be SIGKILLed, when no cleanup runs. What the server forked
	// is not covered; PostgreSQL's backends end with their postmaster.
	c, err := child.Start(cmd)
	if err != nil {
		logf.Close()
		t.Fatalf("envtest: starting %s: %v", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = c.Wait()
		logf.Close()
		close(p.done)
	}()
	return p
}

// stop ends the process: SIGTERM, then SIGKILL after a grace period. It is
// idempotent.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// logTail returns the end of the process's log for failure messages.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// waitReady polls ready until it succeeds, the process exits, or timeout
// passes; it fails the test with the server's log in the last two cases,
// except when the server exited because a port freePort chose was taken
// by another process before the server bound it: then it returns false,
// for the caller to start the server again on new ports (onFreePorts).
func (p *process) waitReady(t testing.TB, timeout time.Duration, ready func(ctx context.Context) error) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = ready(ctx)
		cancel()
		if last == nil {
			return true
		}
		select {
		case <-p.done:
			if log := strings.ToLower(p.logTail()); strings.Contains(log, "address already in use") || strings.Contains(log, "address in use") {
				t.Logf("envtest: %s lost its port to another process; starting it again on new ports", p.name)
				return false
			}
			t.Fatalf("envtest: %s exited (%v) before it was ready (%v); log:\n%s", p.name, p.err, last, p.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("envtest: %s not ready after %v: %v; log:\n%s", p.name, timeout, last, p.logTail())
		}
	}
}

// tempDir returns a fresh directory removed at cleanup. Unlike t.TempDir,
// whose parents are private to root, it can be handed to another user.
func tempDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "weft-envtest-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Logf("envtest: removing %s: %v", dir, err)
		}
	})
	return dir
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
