package service

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// ensureTraceparent keeps a valid W3C traceparent (Trace Context level 1)
// and replaces a missing or malformed one with a new sampled trace, so
// that every request carries a trace context from the ingress on. A
// malformed header also loses its tracestate, as the spec requires. Done by
// hand rather than with OpenTelemetry's propagator: weft records no spans,
// and the format is one line of the spec.
func ensureTraceparent(h http.Header) {
	if validTraceparent(h.Get("Traceparent")) {
		return
	}
	var id [24]byte // 16 bytes of trace ID, 8 of parent ID
	rand.Read(id[:])
	// Written in place, one string: its pieces and their joining were
	// four allocations per request.
	v := [55]byte{0: '0', 1: '0', 2: '-', 35: '-', 52: '-', 53: '0', 54: '1'}
	hex.Encode(v[3:35], id[:16])
	hex.Encode(v[36:52], id[16:])
	h["Traceparent"] = []string{string(v[:])}
	h.Del("Tracestate")
}

// validTraceparent checks version-trace_id-parent_id-flags. A version
// other than 00 (but not ff) may append fields after the flags.
func validTraceparent(v string) bool {
	if len(v) < 55 || (len(v) > 55 && (v[:2] == "00" || v[55] != '-')) {
		return false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' || v[:2] == "ff" {
		return false
	}
	for _, f := range []string{v[:2], v[3:35], v[36:52], v[53:55]} {
		for _, c := range f {
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return !allZero(v[3:35]) && !allZero(v[36:52])
}

func allZero(s string) bool {
	for _, c := range s {
		if c != '0' {
			return false
		}
	}
	return true
}
