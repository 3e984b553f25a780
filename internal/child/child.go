// Package child starts the long-lived processes of tests and benchmark
// harnesses (weft sites and controllers, PostgreSQL, kube-apiserver, etcd,
// BIND) so that they do not outlive the process that started them. Cleanup
// code stops them on every ordinary exit; when the starter is SIGKILLed (a
// CI timeout, a second ^C) no cleanup runs, and orphans would keep holding
// ports and data directories and break the next run. On Linux the kernel
// then kills them (PR_SET_PDEATHSIG); elsewhere they are started plainly and
// can still be orphaned.
//
// A caller starts the command with Start instead of cmd.Start and waits with
// Process.Wait or Process.Done, never cmd.Wait: one goroutine started by
// Start waits for the child, on the thread that started it (see tie).
package child

import "os/exec"

// Process is a child started by Start.
type Process struct {
	done chan struct{}
	err  error // cmd.Wait's result; read after done is closed
}

// Start starts cmd tied to the life of this process. cmd.SysProcAttr may be
// set (a process group, credentials); Start keeps those fields. It returns
// once the child runs, or cmd.Start's error.
func Start(cmd *exec.Cmd) (*Process, error) {
	p := &Process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		untie := tie(cmd)
		defer untie()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Done is closed once the child has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the child to exit and returns what cmd.Wait returned. Any
// number of goroutines may call it.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}
