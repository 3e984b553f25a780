package service

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"weft.dev/weft/internal/balance"
)

func TestParseHedge(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  hedgePolicy
		fails bool
	}{
		{"", hedgePolicy{}, false},
		{"off", hedgePolicy{}, false},
		{"always", hedgePolicy{mode: hedgeAlways}, false},
		{"auto", hedgePolicy{mode: hedgeAuto}, false},
		{"50ms", hedgePolicy{mode: hedgeAfter, after: 50 * time.Millisecond}, false},
		{"0s", hedgePolicy{}, true},
		{"soon", hedgePolicy{}, true},
	} {
		got, err := parseHedge(tc.in)
		if (err != nil) != tc.fails || got != tc.want {
			t.Errorf("parseHedge(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestHedgeDelay(t *testing.T) {
	p95 := 80 * time.Millisecond
	for _, tc := range []struct {
		p     hedgePolicy
		known bool
		want  time.Duration
		ok    bool
	}{
		{hedgePolicy{}, true, 0, false},
		{hedgePolicy{mode: hedgeAlways}, false, 0, true},
		{hedgePolicy{mode: hedgeAfter, after: time.Second}, false, time.Second, true},
		{hedgePolicy{mode: hedgeAuto}, true, p95, true},
		{hedgePolicy{mode: hedgeAuto}, false, 0, false}, // no estimate yet: no hedge
	} {
		d, ok := tc.p.delay(p95, tc.known)
		if d != tc.want || ok != tc.ok {
			t.Errorf("%+v known=%v: delay = %v %v, want %v %v", tc.p, tc.known, d, ok, tc.want, tc.ok)
		}
	}
}

func TestHedgeableRetryable(t *testing.T) {
	marked := http.Header{HeaderHedge: {"1"}}
	upgrade := http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}
	for _, tc := range []struct {
		method         string
		h              http.Header
		hedge, retries bool
	}{
		{"GET", nil, true, true},
		{"HEAD", nil, true, true},
		{"OPTIONS", nil, true, true},
		{"GET", upgrade, false, true},
		{"PUT", nil, false, true},
		{"DELETE", nil, false, true},
		{"POST", nil, false, false},
		{"POST", marked, true, true},
		{"PATCH", nil, false, false},
	} {
		h := tc.h
		if h == nil {
			h = http.Header{}
		}
		if got := hedgeable(tc.method, h); got != tc.hedge {
			t.Errorf("hedgeable(%s, %v) = %v", tc.method, h, got)
		}
		if got := retryable(tc.method, h); got != tc.retries {
			t.Errorf("retryable(%s, %v) = %v", tc.method, h, got)
		}
	}
}

func TestClassify(t *testing.T) {
	answer := func(code int, h ...string) *http.Response {
		r := &http.Response{StatusCode: code, Header: http.Header{}}
		for i := 0; i < len(h); i += 2 {
			r.Header.Set(h[i], h[i+1])
		}
		return r
	}
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		resp      *http.Response
		err       error
		cancelled bool
		want      verdict
	}{
		{"200", answer(200), nil, false, verdictGood},
		{"404 is an answer", answer(404), nil, false, verdictGood},
		{"500", answer(500), nil, false, verdictBad},
		{"target's own 503", answer(503), nil, false, verdictBad},
		{"overload", answer(503, HeaderOverload, "saturated"), nil, false, verdictOverload},
		{"unreachable target", answer(502, HeaderError, "target unreachable"), nil, false, verdictFailed},
		{"path broke", nil, boom, false, verdictFailed},
		{"cancelled", nil, boom, true, verdictCancelled},
		{"answer beats a late cancel", answer(200), nil, true, verdictGood},
		{"grpc ok", answer(200, "Content-Type", "application/grpc", "Grpc-Status", "0"), nil, false, verdictGood},
		{"grpc streamed answer", answer(200, "Content-Type", "application/grpc+proto"), nil, false, verdictGood},
		{"grpc unavailable, trailers only", answer(200, "Content-Type", "application/grpc", "Grpc-Status", "14"), nil, false, verdictRetriable},
		{"grpc resource exhausted", answer(200, "Content-Type", "application/grpc", "Grpc-Status", "8"), nil, false, verdictRetriable},
		{"grpc not found is an answer", answer(200, "Content-Type", "application/grpc", "Grpc-Status", "5"), nil, false, verdictGood},
		{"grpc-status outside gRPC", answer(200, "Grpc-Status", "14"), nil, false, verdictGood},
	} {
		if got := classify(tc.resp, tc.err, tc.cancelled, defaultGRPCRetryOn); got != tc.want {
			t.Errorf("%s: classify = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestQuantileWindow(t *testing.T) {
	var w quantileWindow
	if _, ok := w.quantile(0.95); ok {
		t.Fatal("estimate from no samples")
	}
	// 95 fast answers and 5 slow ones: p95 is the last fast one, p96 a
	// slow one (nearest rank).
	for i := range 100 {
		d := time.Duration(i+1) * time.Millisecond
		if i >= 95 {
			d = time.Second
		}
		w.add(d)
	}
	if q, ok := w.quantile(0.95); !ok || q != 95*time.Millisecond {
		t.Errorf("p95 = %v %v, want 95ms", q, ok)
	}
	if q, _ := w.quantile(0.96); q != time.Second {
		t.Errorf("p96 = %v, want 1s", q)
	}
	// The window forgets: after a window of 2ms samples the slow past is
	// gone.
	for range quantileWindowSize {
		w.add(2 * time.Millisecond)
	}
	if q, _ := w.quantile(0.95); q != 2*time.Millisecond {
		t.Errorf("p95 after a window of 2ms = %v", q)
	}
}

func TestQuantileWindowMinSamples(t *testing.T) {
	var w quantileWindow
	for range quantileMinSamples - 1 {
		w.add(time.Millisecond)
	}
	if _, ok := w.quantile(0.95); ok {
		t.Error("estimate below the minimum number of samples")
	}
	w.add(time.Millisecond)
	if q, ok := w.quantile(0.95); !ok || q != time.Millisecond {
		t.Errorf("p95 = %v %v", q, ok)
	}
}

func TestTraceparent(t *testing.T) {
	valid := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		in   string
		keep bool
	}{
		{valid, true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", true},
		{"", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{valid + "-extra", false}, // version 00 has no more fields
	} {
		h := http.Header{}
		if tc.in != "" {
			h.Set("Traceparent", tc.in)
		}
		h.Set("Tracestate", "x=1")
		ensureTraceparent(h)
		got := h.Get("Traceparent")
		if tc.keep != (got == tc.in) {
			t.Errorf("%q became %q", tc.in, got)
		}
		if !validTraceparent(got) {
			t.Errorf("%q: result %q is not valid", tc.in, got)
		}
		if !tc.keep && h.Get("Tracestate") != "" {
			t.Errorf("%q: tracestate kept with a new trace", tc.in)
		}
	}
}

func TestAnswerOutcome(t *testing.T) {
	grpcAnswer := func(header, trailer string) *http.Response {
		r := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/grpc"}}, Trailer: http.Header{}}
		if header != "" {
			r.Header.Set("Grpc-Status", header)
		}
		if trailer != "" {
			r.Trailer.Set("Grpc-Status", trailer)
		}
		return r
	}
	onlyUnavailable, err := parseGRPCCodes([]string{"unavailable"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		resp    *http.Response
		retryOn grpcCodes
		gone    bool
		want    balance.Outcome
	}{
		{"http 200", &http.Response{StatusCode: 200, Header: http.Header{}}, defaultGRPCRetryOn, false, balance.Success},
		{"http 503", &http.Response{StatusCode: 503, Header: http.Header{}}, defaultGRPCRetryOn, false, balance.GatewayError},
		{"ok in trailers", grpcAnswer("", "0"), defaultGRPCRetryOn, false, balance.Success},
		{"unavailable in trailers", grpcAnswer("", "14"), defaultGRPCRetryOn, false, balance.GatewayError},
		{"unavailable, trailers only", grpcAnswer("14", ""), defaultGRPCRetryOn, false, balance.GatewayError},
		{"deadline exceeded", grpcAnswer("", "4"), defaultGRPCRetryOn, false, balance.GatewayError},
		{"deadline exceeded, not configured", grpcAnswer("", "4"), onlyUnavailable, false, balance.ClientError},
		{"internal", grpcAnswer("", "13"), defaultGRPCRetryOn, false, balance.ServerError},
		{"not found", grpcAnswer("", "5"), defaultGRPCRetryOn, false, balance.ClientError},
		{"no status, stream broke", grpcAnswer("", ""), defaultGRPCRetryOn, false, balance.ServerError},
		{"no status, client gone", grpcAnswer("", ""), defaultGRPCRetryOn, true, balance.Cancelled},
	} {
		if got := answerOutcome(tc.resp, tc.retryOn, tc.gone); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := parseGRPCCodes([]string{"sometimes"}); err == nil {
		t.Error("unknown code accepted")
	}
}
