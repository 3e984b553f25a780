package child

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	helpers["starter"] = starter
	if os.Getenv(modeEnv) == "starter" {
		// init runs on the main thread. Holding it keeps the goroutine in
		// starter that locks a thread and exits off it: Go does not end
		// the main thread, and the test waits for that thread to end.
		runtime.LockOSThread()
	}
}

// starter is the process the test SIGKILLs. It starts an echo child through
// Start from a goroutine locked to its thread, which then exits and so ends
// that thread, as any careless goroutine may. The child must survive that:
// only Start's own thread is its parent. starter checks it answers, prints
// its pid and waits.
func starter() int {
	cmd := helperCmd("echo")
	in, err := cmd.StdinPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	type started struct {
		p   *Process
		tid int
		err error
	}
	ch := make(chan started)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		p, err := Start(cmd)
		ch <- started{p, syscall.Gettid(), err}
	}()
	s := <-ch
	if s.err != nil {
		fmt.Fprintln(os.Stderr, s.err)
		return 1
	}
	task := fmt.Sprintf("/proc/self/task/%d", s.tid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(task); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "the caller's locked thread did not end")
			return 1
		}
	}
	// The kernel signals before the thread's /proc entry goes, and a child
	// with SIGKILL pending never runs user code again: an answer now means
	// the thread's end did not touch it.
	fmt.Fprintln(in, "ping")
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ping\n" {
		fmt.Fprintf(os.Stderr, "child gone after its starter's calling thread ended: %q, %v\n", line, err)
		return 1
	}
	fmt.Println(cmd.Process.Pid)
	s.p.Wait() // until SIGKILLed
	return 0
}

// A child started through Start dies with its starter, even when that is
// SIGKILLed and no cleanup runs.
func TestKilledStarterTakesChildAlong(t *testing.T) {
	// Orphans go to the nearest subreaper: with this process one, the test
	// reaps the child and sees how it ended, instead of relying on PID 1
	// (which in a container may never reap).
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	st := helperCmd("starter")
	var stderr bytes.Buffer
	st.Stderr = &stderr
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st.Stdout = w
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(r).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		st.Process.Kill()
		st.Wait()
		t.Fatalf("starter gave no child pid: %v %v\n%s", err, perr, stderr.String())
	}

	// SIGKILL, then reap: once the starter is reaped, its child has been
	// reparented to this process, so Wait4 below finds it.
	st.Process.Kill()
	st.Wait()

	type reaped struct {
		ws  syscall.WaitStatus
		err error
	}
	done := make(chan reaped, 1)
	go func() {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		done <- reaped{ws, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("reaping the child %d: %v", pid, r.err)
		}
		if !r.ws.Signaled() || r.ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child %d ended with %v, want SIGKILL", pid, r.ws)
		}
	case <-time.After(10 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		<-done
		t.Fatalf("child %d outlived its SIGKILLed starter by 10s", pid)
	}
}

// Start adds the death signal to the caller's SysProcAttr without losing
// its other fields, and without writing to the caller's struct.
func TestStartKeepsSysProcAttr(t *testing.T) {
	cmd := helperCmd("echo")
	attr := &syscall.SysProcAttr{Setpgid: true}
	cmd.SysProcAttr = attr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		in.Close()
		cmd.Process.Kill()
		p.Wait()
	}()
	if attr.Pdeathsig != 0 {
		t.Fatal("Start wrote to the caller's SysProcAttr")
	}
	if !cmd.SysProcAttr.Setpgid || cmd.SysProcAttr.Pdeathsig != syscall.SIGKILL {
		t.Fatalf("SysProcAttr %+v", *cmd.SysProcAttr)
	}
	if pgid, err := syscall.Getpgid(cmd.Process.Pid); err != nil || pgid != cmd.Process.Pid {
		t.Fatalf("child's process group %d (%v), want its own %d", pgid, err, cmd.Process.Pid)
	}
}
