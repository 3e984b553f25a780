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
)

func init() {
	addr := os.Getenv("WEFT_PPROF")
	if addr == "" {
		return
	}
	// Block and mutex profiles stay off: recording them costs a stack
	// walk per event, which would show in the CPU profile being taken.
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintln(os.Stderr, "pprof:", err)
		}
	}()
}
