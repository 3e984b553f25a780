package service

import (
	"net/http"
	"strings"
	"testing"

	"weft.dev/weft/internal/balance"
)

// FuzzGRPCOutcome feeds answer headers and trailers as a target or a
// peer site may send them to the gRPC classification, which must never
// panic and must agree with itself: a retriable verdict at the headers is
// a gateway error for the whole answer.
func FuzzGRPCOutcome(f *testing.F) {
	f.Add(200, "application/grpc", "14", "")
	f.Add(200, "application/grpc+proto", "", "0")
	f.Add(200, "application/grpc", "", "99999999999999999999")
	f.Add(503, "text/plain", "-1", "x")
	f.Fuzz(func(t *testing.T, code int, ctype, header, trailer string) {
		resp := &http.Response{StatusCode: code, Header: http.Header{}, Trailer: http.Header{}}
		resp.Header.Set("Content-Type", ctype)
		if header != "" {
			resp.Header.Set("Grpc-Status", header)
		}
		if trailer != "" {
			resp.Trailer.Set("Grpc-Status", trailer)
		}
		o := answerOutcome(resp, defaultGRPCRetryOn, false)
		if classify(resp, nil, false, defaultGRPCRetryOn) == verdictRetriable && o != balance.GatewayError {
			t.Fatalf("retriable at the headers, %v for the answer", o)
		}
	})
}

// FuzzProbeAnswer: a target's first bytes, whatever they are, are judged
// without a panic, and only an HTTP/2 SETTINGS frame counts as h2c.
func FuzzProbeAnswer(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if probeH2C.answer(b) && probeHTTP1.answer(b) {
			t.Fatalf("%q taken for both versions", b)
		}
	})
}

// FuzzGRPCTimeout: a client's grpc-timeout, whatever it holds, is read
// without a panic, never as a negative duration, and only in its one form.
func FuzzGRPCTimeout(f *testing.F) {
	for _, s := range []string{"200m", "99999999H", "0n", "1S", "12345678u", "-1m", "1x", "m", "123456789n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := grpcTimeout(http.Header{"Grpc-Timeout": {s}})
		if !ok {
			return
		}
		if d < 0 {
			t.Fatalf("%q read as %v", s, d)
		}
		digits := s[:len(s)-1]
		if len(digits) < 1 || len(digits) > 8 || strings.Trim(digits, "0123456789") != "" || !strings.Contains("HMSmun", s[len(s)-1:]) {
			t.Fatalf("%q read as %v: not 1 to 8 digits and a unit", s, d)
		}
	})
}
