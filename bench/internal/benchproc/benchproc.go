// Package benchproc runs the child processes of the benchmark harnesses
// (weft sites, HAProxy, nats-server) so that every exit path of a harness
// stops them, and polls for their readiness with a deadline.
package benchproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"weft.dev/weft/internal/child"
	"weft.dev/weft/internal/logbuf"
)

// Cleanups runs teardown steps in reverse order of registration, once, so
// that a failure half-way through setting up still stops what was started.
// The zero value is ready to use; the harness must defer Run.
type Cleanups struct {
	mu    sync.Mutex
	steps []func()
}

// Add registers f to be run by Run.
func (c *Cleanups) Add(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, f)
}

// Run runs the steps added so far, last first, and forgets them.
func (c *Cleanups) Run() {
	c.mu.Lock()
	steps := c.steps
	c.steps = nil
	c.mu.Unlock()
	for i := len(steps) - 1; i >= 0; i-- {
		steps[i]()
	}
}

// Proc is a long-running child process.
type Proc struct {
	name string
	cmd  *exec.Cmd
	out  *logbuf.Buffer
	done <-chan struct{} // closed once the child has exited
}

// Start starts a child and registers its termination with cl, so every
// exit path of the harness (error, signal, normal end) stops it. name is
// what error messages call the child.
func Start(cl *Cleanups, name, bin string, args ...string) (*Proc, error) {
	return StartTee(cl, name, nil, bin, args...)
}

// StartTee is Start that also copies the child's output to tee (when not
// nil), for a harness that keeps whole logs: Output holds only the tail.
// One goroutine at a time writes to tee (stdout and stderr share a pipe).
func StartTee(cl *Cleanups, name string, tee io.Writer, bin string, args ...string) (*Proc, error) {
	return startEnv(cl, name, tee, nil, bin, args...)
}

// startEnv is StartTee with env added to the harness's environment.
func startEnv(cl *Cleanups, name string, tee io.Writer, env []string, bin string, args ...string) (*Proc, error) {
	p := &Proc{name: name, out: &logbuf.Buffer{Max: 1 << 20}}
	p.cmd = exec.Command(bin, args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	var w io.Writer = p.out
	if tee != nil {
		w = io.MultiWriter(p.out, tee)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	// child.Start has the kernel kill the child should the harness itself
	// be SIGKILLed, when no deferred cleanup can run.
	c, err := child.Start(p.cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.done = c.Done()
	cl.Add(p.Stop)
	return p, nil
}

// Name is the name given to Start.
func (p *Proc) Name() string { return p.name }

// Output is the child's stdout and stderr so far (the last 256 KiB at
// least, for a chatty child).
func (p *Proc) Output() string { return p.out.String() }

// Stop asks the child to exit (SIGTERM: a clean shutdown for weft and
// nats-server, an immediate stop for HAProxy) and kills it if it has not
// gone in 5 s. It returns once the child has exited.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill ends the child with SIGKILL, as a crash would, and returns once it
// has been reaped: its files and ports are then free for a successor.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// Signal sends sig to the child (SIGSTOP and SIGCONT freeze and thaw it).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the child has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// CPUSeconds is the user+system CPU time the process has used so far, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func (p *Proc) CPUSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may contain spaces; fields are counted
	// after its closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// FreePort returns a port that was free a moment ago, by binding :0 and
// releasing it. HAProxy and nats-server need ports in their configuration
// files, so the small race with other programs picking the same port is
// accepted.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// fatal marks an error that waiting longer cannot cure.
type fatal struct{ error }

func (f fatal) Unwrap() error { return f.error }

// Fatal wraps err for a Poll condition to return when waiting longer cannot
// cure it (a child exited), so that Poll reports it at once instead of at
// its deadline.
func Fatal(err error) error { return fatal{err} }

// Poll calls cond until it returns nil, the deadline d passes or ctx ends;
// it returns the last error so that a timeout says what was still wrong.
func Poll(ctx context.Context, d time.Duration, what string, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if f, ok := err.(fatal); ok {
			return fmt.Errorf("waiting for %s: %w", what, f.error)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timed out after %v waiting for %s: %w", d, what, err)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// HAProxyVersion is the first line of `haproxy -v`.
func HAProxyVersion(bin string) string {
	out, err := exec.Command(bin, "-v").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
