package main

import (
	"os"
	"os/exec"
)

// demoCommand is how the demo's printed commands should start so that they
// work as printed: "weft" when that finds this very binary on PATH, else
// this binary's absolute path. Under `go run` the binary is a temporary
// one, which lives as long as the demo does.
func demoCommand() string {
	self, err := os.Executable()
	if err != nil {
		return "weft"
	}
	if onPath, err := exec.LookPath("weft"); err == nil && sameFile(onPath, self) {
		return "weft"
	}
	return self
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
