package service

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

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
