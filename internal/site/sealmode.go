//go:build !weft_bench_unsealed

package site

// sealStreams is true in every build but the benchmark's unsealed one
// (sealmode_unsealed.go): service streams are always sealed end to end.
const sealStreams = true
