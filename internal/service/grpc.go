package service

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/resource"
)

// gRPC answers over HTTP/2 are 200 whatever happened: the outcome is the
// grpc-status in the trailers, or in the headers of a trailers-only answer
// (what a server sends when it fails before any message). The ingress
// judges the headers when they come (a retriable status there is retried
// like a failure, when the request is safe) and the whole answer when the
// client closes it, for outlier detection; so does the connector site
// for its own targets.

// grpcCodes is a set of gRPC status codes (0 to 16), one bit each.
type grpcCodes uint32

// gRPC status codes weft names, as in google.golang.org/grpc/codes.
const (
	grpcOK                = 0
	grpcCancelled         = 1
	grpcUnknown           = 2
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcDataLoss          = 15
)

// defaultGRPCRetryOn is Envoy's set of retriable gRPC codes.
const defaultGRPCRetryOn = 1<<grpcCancelled | 1<<grpcDeadlineExceeded | 1<<grpcResourceExhausted | 1<<grpcUnavailable

// parseGRPCCodes reads a validated ListenerSpec.GRPCRetryOn; empty is the
// default set.
func parseGRPCCodes(names []string) (grpcCodes, error) {
	if len(names) == 0 {
		return defaultGRPCRetryOn, nil
	}
	var set grpcCodes
	for _, n := range names {
		c, ok := resource.GRPCCode(n)
		if !ok {
			return 0, fmt.Errorf("grpcRetryOn: %q is not a gRPC code", n)
		}
		set |= 1 << c
	}
	return set, nil
}

func (s grpcCodes) has(code int) bool { return code >= 0 && code < 32 && s&(1<<code) != 0 }

// isGRPC reports whether h is the headers of a gRPC answer.
func isGRPC(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "application/grpc")
}

// grpcStatus returns the grpc-status of h, false when it has none or one
// that is not a number.
func grpcStatus(h http.Header) (int, bool) {
	v := h.Get("Grpc-Status")
	if v == "" {
		return 0, false
	}
	c, err := strconv.Atoi(v)
	return c, err == nil && c >= 0
}

// grpcOutcome classifies a gRPC status for outlier detection: the
// retriable codes are gateway errors (the server could not serve); Internal,
// Unknown and DataLoss are server errors; every other code is a proper
// answer of the application, which resets the run of errors as a 4xx does.
func grpcOutcome(code int, retryOn grpcCodes) balance.Outcome {
	switch {
	case code == grpcOK:
		return balance.Success
	case retryOn.has(code):
		return balance.GatewayError
	case code == grpcInternal || code == grpcUnknown || code == grpcDataLoss:
		return balance.ServerError
	}
	return balance.ClientError
}

// answerOutcome is the outcome of a whole answer, once its body was read
// or abandoned: its HTTP status, or for gRPC its grpc-status, from the
// trailers or a trailers-only answer's headers. A gRPC answer without a
// status is cancelled when the client went away (gone), else a server
// error (its stream broke).
func answerOutcome(resp *http.Response, retryOn grpcCodes, gone bool) balance.Outcome {
	o := balance.OutcomeForStatus(resp.StatusCode)
	if o != balance.Success || !isGRPC(resp.Header) {
		return o
	}
	code, ok := grpcStatus(resp.Header)
	if !ok {
		code, ok = grpcStatus(resp.Trailer)
	}
	switch {
	case !ok && gone:
		return balance.Cancelled
	case !ok:
		return balance.ServerError
	}
	return grpcOutcome(code, retryOn)
}

// retriableGRPC reports whether the headers of an answer are a
// trailers-only gRPC answer with a status in retryOn: the server served
// nothing, and a safe request may go elsewhere.
func retriableGRPC(resp *http.Response, retryOn grpcCodes) bool {
	if resp == nil || resp.StatusCode != http.StatusOK || !isGRPC(resp.Header) {
		return false
	}
	code, ok := grpcStatus(resp.Header)
	return ok && retryOn.has(code)
}

// grpcTimeout reads a request's grpc-timeout: at most 8 digits and a unit
// (gRPC's PROTOCOL-HTTP2), false when absent or malformed.
func grpcTimeout(h http.Header) (time.Duration, bool) {
	v := h.Get("Grpc-Timeout")
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	i := strings.IndexByte("HMSmun", v[len(v)-1])
	if i < 0 {
		return 0, false
	}
	unit := [...]time.Duration{time.Hour, time.Minute, time.Second, time.Millisecond, time.Microsecond, time.Nanosecond}[i]
	var n int64
	for _, c := range v[:len(v)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	// 8 digits of hours overflow a Duration: such a deadline is none.
	if n > int64(1<<63-1)/int64(unit) {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// withGRPCDeadline gives a gRPC request the deadline its grpc-timeout
// sets, so that the ingress stops waiting when the client does and, when
// the request fails, knows whether the deadline is why (grpcError).
func withGRPCDeadline(r *http.Request) (*http.Request, context.CancelFunc) {
	if d, ok := grpcTimeout(r.Header); ok && isGRPC(r.Header) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		return r.WithContext(ctx), cancel
	}
	return r, func() {}
}

// grpcError answers a gRPC request the ingress could not serve with a
// trailers-only gRPC status, as a gRPC client expects rather than an HTTP
// error. Once the request's deadline passed the status is
// DEADLINE_EXCEEDED, whichever failure the deadline caused on the way (the
// target resets a stream whose grpc-timeout passed, and a connector site
// reports that as an unreachable target); it is judged by the clock, not
// by the context, whose timer may not have run yet. Any other failure is
// UNAVAILABLE, what gRPC makes of a 502 or 503.
func grpcError(w http.ResponseWriter, r *http.Request, err error) {
	code := grpcUnavailable
	if dl, ok := r.Context().Deadline(); ok && !time.Now().Before(dl) {
		code = grpcDeadlineExceeded
	}
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", grpcMessage(err.Error()))
	w.WriteHeader(http.StatusOK)
}

// grpcMessage percent-encodes s as a grpc-message: every byte outside
// printable ASCII, and '%'.
func grpcMessage(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
