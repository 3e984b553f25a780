package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
)

// startProfile writes a CPU profile of this process to dir, and at stop an
// allocation profile beside it, each named after the process ID so that the
// sites of one benchmark keep theirs apart (bench/README.md). An empty dir
// profiles nothing. Profiling is for benchmarks, so a file that cannot be
// written is reported and otherwise ignored.
func startProfile(dir string) (stop func()) {
	if dir == "" {
		return func() {}
	}
	pid := os.Getpid()
	cpu, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%d.pprof", pid)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft: WEFT_PROFILE_DIR:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		fmt.Fprintln(os.Stderr, "weft: WEFT_PROFILE_DIR:", err)
		cpu.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		cpu.Close()
		runtime.GC()
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("allocs-%d.pprof", pid)))
		if err != nil {
			fmt.Fprintln(os.Stderr, "weft: WEFT_PROFILE_DIR:", err)
			return
		}
		defer f.Close()
		pprof.Lookup("allocs").WriteTo(f, 0)
	}
}
