//go:build !linux

package child

import "os/exec"

// tie does nothing: only Linux has a parent-death signal that os/exec can
// set, so elsewhere a SIGKILLed starter still leaves its children behind.
func tie(*exec.Cmd) (untie func()) { return func() {} }
