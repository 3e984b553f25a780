//go:build pprof

// Built with -tags pprof (bench/run-http.sh --profile does), weft serves
// net/http/pprof on the address in WEFT_PPROF, for profiling a site under
// a benchmark. Release builds have no such endpoint.

package main

import (
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
)

func init() {
	addr := os.Getenv("WEFT_PPROF")
	if addr == "" {
		return
	}
	// Every allocation site, not a sample of one in 512 KiB, would slow
	// the site; the default rate is kept and block/mutex profiles are on.
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(100_000)
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintln(os.Stderr, "pprof:", err)
		}
	}()
}
