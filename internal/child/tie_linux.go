package child

import (
	"os/exec"
	"runtime"
	"syscall"
)

// tie makes the kernel SIGKILL cmd's process when the thread that starts it
// exits, and keeps the calling goroutine on its thread until untie.
//
// Pdeathsig belongs to the thread that forked the child, not to the process
// (prctl(2); go.dev/issue/27505). Go ends a thread when a goroutine exits
// while locked to it, so a thread that returned to the pool after cmd.Start
// could be ended by any code that forgets UnlockOSThread, killing a healthy
// child. The goroutine of Start therefore holds its thread from cmd.Start
// until cmd.Wait has reaped the child, so no other goroutine ever runs on it
// (as moby does for its Pdeathsig children, moby/moby#44215); locking only
// around cmd.Start would not be enough. The cost is one OS thread per live
// child, blocked in wait4 and holding no P.
//
// The rest of SysProcAttr is copied, not changed in place, in case the
// caller shares it between commands. Go sets the signal after changing
// credentials, which would otherwise clear it.
func tie(cmd *exec.Cmd) (untie func()) {
	var attr syscall.SysProcAttr
	if cmd.SysProcAttr != nil {
		attr = *cmd.SysProcAttr
	}
	attr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr = &attr
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}
