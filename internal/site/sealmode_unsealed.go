//go:build weft_bench_unsealed

package site

import "os"

// sealStreams is false only in a binary built with -tags
// weft_bench_unsealed, which bench/run-tcp.sh --unsealed builds from the
// same tree to measure what sealing itself costs (bench/README.md). Such
// a site opens and serves service streams in the clear and refuses none
// for a missing seal: it is not for use, and says so when it starts. No
// runtime setting can turn sealing off.
const sealStreams = false

func init() {
	os.Stderr.WriteString("weft: built with -tags weft_bench_unsealed: service streams are NOT sealed end to end; for benchmarks only\n")
}
