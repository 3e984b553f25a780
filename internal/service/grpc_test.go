package service

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"weft.dev/weft/internal/balance"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/service/grpctest"
)

// startGRPC starts a gRPC target stopped when the test ends.
func startGRPC(t *testing.T, name string) *grpctest.Server {
	t.Helper()
	s, err := grpctest.Start(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// dialGRPC is one client connection (h2c) to addr.
func dialGRPC(t *testing.T, addr string) (testpb.TestServiceClient, *grpc.ClientConn) {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(grpctest.MaxMessage), grpc.MaxCallSendMsgSize(grpctest.MaxMessage)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testpb.NewTestServiceClient(cc), cc
}

func grpcContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// grpcWorlds are the paths a gRPC call is tested on: one hop (listener at
// a, target behind b) and two (through transit site t).
func grpcWorlds(t *testing.T, f func(t *testing.T, tc testpb.TestServiceClient, cc *grpc.ClientConn, srv *grpctest.Server)) {
	for _, hops := range []string{"one-hop", "two-hops"} {
		t.Run(hops, func(t *testing.T) {
			w := newWorld(t, "a", "t", "b")
			if hops == "one-hop" {
				w.link("a", "b", 1)
			} else {
				w.link("a", "t", 1)
				w.link("t", "b", 1)
			}
			srv := startGRPC(t, "at-b")
			w.connector("b", httpConnector("echo", "echo", srv.Addr))
			tc, cc := dialGRPC(t, w.listener("a", httpListener("echo", "")))
			f(t, tc, cc, srv)
		})
	}
}

func TestGRPCUnaryStatusAndMetadata(t *testing.T) {
	grpcWorlds(t, func(t *testing.T, tc testpb.TestServiceClient, cc *grpc.ClientConn, srv *grpctest.Server) {
		ctx := metadata.AppendToOutgoingContext(grpcContext(t), grpctest.MDEcho, "hello", grpctest.MDEchoBin, "\x00\xff")
		var header, trailer metadata.MD
		resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 10}, grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if resp.ServerId != "at-b" || len(resp.Payload.Body) != 10 {
			t.Errorf("answer %v", resp)
		}
		if got := header.Get(grpctest.MDEcho); len(got) != 1 || got[0] != "hello" {
			t.Errorf("echoed header %q", got)
		}
		if got := header.Get(grpctest.MDEchoBin); len(got) != 1 || got[0] != "\x00\xff" {
			t.Errorf("echoed binary header %q", got)
		}
		if got := trailer.Get(grpctest.MDTrailerBin); len(got) != 1 || got[0] != grpctest.TrailerBin {
			t.Errorf("binary trailer %q, want %q", got, grpctest.TrailerBin)
		}

		// A status with a message, in the trailers of an answer.
		_, err = tc.UnaryCall(grpcContext(t), &testpb.SimpleRequest{
			ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such order: 42 ünïcode"},
		})
		if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "no such order: 42 ünïcode" {
			t.Errorf("status %v, want NotFound with its message", err)
		}

		// Unimplemented is a trailers-only answer.
		_, err = tc.UnimplementedCall(grpcContext(t), &testpb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("unimplemented: %v", err)
		}

		// grpc-go's health service.
		h, err := healthpb.NewHealthClient(cc).Check(grpcContext(t), &healthpb.HealthCheckRequest{})
		if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %v %v", h, err)
		}
	})
}

func TestGRPCStreams(t *testing.T) {
	grpcWorlds(t, func(t *testing.T, tc testpb.TestServiceClient, _ *grpc.ClientConn, _ *grpctest.Server) {
		// Server streaming.
		params := []*testpb.ResponseParameters{{Size: 1}, {Size: 100}, {Size: 70_000}}
		out, err := tc.StreamingOutputCall(grpcContext(t), &testpb.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range params {
			r, err := out.Recv()
			if err != nil || int32(len(r.Payload.Body)) != p.Size {
				t.Fatalf("server stream message %d: %v %v", i, r, err)
			}
		}
		if _, err := out.Recv(); err != io.EOF {
			t.Errorf("server stream end: %v", err)
		}

		// Client streaming.
		in, err := tc.StreamingInputCall(grpcContext(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{3, 300, 100_000} {
			if err := in.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
				t.Fatal(err)
			}
		}
		if r, err := in.CloseAndRecv(); err != nil || r.AggregatedPayloadSize != 100_303 {
			t.Errorf("client stream: %v %v", r, err)
		}

		// Bidirectional: each answer comes back before the next request
		// goes, so nothing may be buffered along the way.
		bidi, err := tc.FullDuplexCall(grpcContext(t))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			size := int32(i * 1000)
			if err := bidi.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: size}}}); err != nil {
				t.Fatal(err)
			}
			r, err := bidi.Recv()
			if err != nil || int32(len(r.Payload.Body)) != size {
				t.Fatalf("bidi round %d: %v %v", i, r, err)
			}
		}
		// A status ends the stream with its message.
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Aborted), Message: "enough"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := bidi.Recv(); status.Code(err) != codes.Aborted || status.Convert(err).Message() != "enough" {
			t.Errorf("bidi status: %v", err)
		}
	})
}

func TestGRPCLargeMessages(t *testing.T) {
	grpcWorlds(t, func(t *testing.T, tc testpb.TestServiceClient, _ *grpc.ClientConn, _ *grpctest.Server) {
		const big = 5 << 20 // above gRPC's 4 MiB default limit
		resp, err := tc.UnaryCall(grpcContext(t), &testpb.SimpleRequest{ResponseSize: big, Payload: &testpb.Payload{Body: make([]byte, big)}})
		if err != nil || len(resp.Payload.Body) != big {
			t.Fatalf("5 MiB each way: %v", err)
		}
	})
}

func TestGRPCCancellationAndDeadline(t *testing.T) {
	grpcWorlds(t, func(t *testing.T, tc testpb.TestServiceClient, _ *grpc.ClientConn, srv *grpctest.Server) {
		held := metadata.AppendToOutgoingContext(grpcContext(t), grpctest.MDHold, "1")

		// Cancelled by the client while the server holds it (after the
		// first answer, so that the call is known to be at the server).
		ctx, cancel := context.WithCancel(held)
		out, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := out.Recv(); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := waitEnded(t, srv); !errors.Is(err, context.Canceled) {
			t.Errorf("server saw %v, want the cancellation", err)
		}

		// A deadline: the client gets DeadlineExceeded and the server's
		// work stops (by grpc-timeout or by the cancel that follows it).
		ctx, cancel = context.WithTimeout(held, 300*time.Millisecond)
		defer cancel()
		_, err = tc.UnaryCall(ctx, &testpb.SimpleRequest{})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("deadline: %v", err)
		}
		waitCallsEnded(t, srv, srv.Ended, 1)
	})
}

// waitCallsEnded waits until every call srv started has reported its end
// on ended, endedBefore of them already taken from it. A call with a
// deadline may never reach the server: on a loaded machine the deadline
// can pass on the way, and weft cancels the call before it gets there.
// What must not happen is a call that got there and goes on.
func waitCallsEnded(t *testing.T, srv *grpctest.Server, ended <-chan error, endedBefore int) {
	t.Helper()
	n := int64(endedBefore)
	waitFor(t, "every call the server started to end", func() bool {
		for {
			select {
			case <-ended:
				n++
				continue
			default:
			}
			return srv.Calls.Load() == n
		}
	})
}

// A target that does not stop at its deadline gets its stream reset by
// grpc-go, which a connector site reports as an unreachable target (502).
// The client must still get DEADLINE_EXCEEDED from weft: on a loaded
// machine the answer can reach a grpc-go client before its own timer runs
// (TestGRPCCancellationAndDeadline/two-hops failed so). The client here is
// raw h2c with no timer of its own, so that weft's answer is what it gets,
// whichever of the ingress's deadline and the target's reset comes first.
func TestGRPCDeadlineAtTheTarget(t *testing.T) {
	grpcWorlds(t, func(t *testing.T, _ testpb.TestServiceClient, cc *grpc.ClientConn, srv *grpctest.Server) {
		ended, release := make(chan error, 1), make(chan struct{})
		t.Cleanup(func() { close(release) }) // before the server stops
		gate := func(ctx context.Context) {
			<-ctx.Done()
			ended <- ctx.Err()
			<-release
		}
		srv.Gate.Store(&gate)
		code, st, _ := rawGRPC(t, cc.Target(), "200m")
		if code != http.StatusOK || st != strconv.Itoa(int(codes.DeadlineExceeded)) {
			t.Errorf("answer %d, grpc-status %q, want 200 and DEADLINE_EXCEEDED", code, st)
		}
		// By its deadline or by weft's cancel, whichever ran first.
		waitCallsEnded(t, srv, ended, 0)
	})
}

// A failure that the deadline caused is DEADLINE_EXCEEDED even when the
// request's context timer has not run yet: the failure can come first.
func TestGRPCErrorJudgesTheDeadlineByTheClock(t *testing.T) {
	for _, c := range []struct {
		deadline time.Time
		want     int
	}{
		{time.Now().Add(-time.Millisecond), grpcDeadlineExceeded},
		{time.Now().Add(time.Hour), grpcUnavailable},
		{time.Time{}, grpcUnavailable}, // no deadline
	} {
		r := httptest.NewRequestWithContext(timerNotRun{context.Background(), c.deadline}, http.MethodPost, "/", nil)
		rec := httptest.NewRecorder()
		grpcError(rec, r, errors.New("site b: target unreachable 100%"))
		h := rec.Result().Header
		if rec.Code != http.StatusOK || h.Get("Grpc-Status") != strconv.Itoa(c.want) || h.Get("Grpc-Message") != "site b: target unreachable 100%25" {
			t.Errorf("deadline %v: %d %v, want grpc-status %d", c.deadline, rec.Code, h, c.want)
		}
	}
}

// timerNotRun is a context whose deadline may have passed while nothing
// cancelled it yet.
type timerNotRun struct {
	context.Context
	deadline time.Time
}

func (c timerNotRun) Deadline() (time.Time, bool) { return c.deadline, !c.deadline.IsZero() }

// A gRPC request weft cannot serve gets a gRPC status with weft's reason,
// not an HTTP error page.
func TestGRPCNoConnectorIsUnavailable(t *testing.T) {
	w := newWorld(t, "a")
	addr := w.listener("a", httpListener("echo", ""))
	code, st, msg := rawGRPC(t, addr, "")
	if code != http.StatusOK || st != strconv.Itoa(int(codes.Unavailable)) || !strings.Contains(msg, errNoCandidate.Error()) {
		t.Errorf("answer %d, grpc-status %q %q, want 200 and UNAVAILABLE with weft's reason", code, st, msg)
	}
}

// rawGRPC sends one empty unary call to target (a gRPC dial target) over
// h2c without a gRPC client, so that no timer of a client ends it, and
// returns the HTTP status and the grpc-status and grpc-message of the
// headers or trailers.
func rawGRPC(t *testing.T, target, timeout string) (code int, grpcStatus, grpcMessage string) {
	t.Helper()
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	u := "http://" + strings.TrimPrefix(target, "passthrough:///") + "/grpc.testing.TestService/UnaryCall"
	req, err := http.NewRequestWithContext(grpcContext(t), http.MethodPost, u, bytes.NewReader(make([]byte, 5))) // one empty message
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	if timeout != "" {
		req.Header.Set("Grpc-Timeout", timeout)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	get := func(k string) string { return resp.Header.Get(k) + resp.Trailer.Get(k) }
	msg, _ := url.PathUnescape(get("Grpc-Message"))
	return resp.StatusCode, get("Grpc-Status"), msg
}

func waitEnded(t *testing.T, srv *grpctest.Server) error {
	t.Helper()
	select {
	case err := <-srv.Ended:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the held RPC never ended at the server")
		return nil
	}
}

func TestGRPCBalancesPerRPC(t *testing.T) {
	w, tc, _, _ := grpcPair(t, httpListener("echo", ""), 1)
	seen := map[string]int{}
	for range 40 {
		resp, err := tc.UnaryCall(grpcContext(t), &testpb.SimpleRequest{})
		if err != nil {
			t.Fatal(err)
		}
		seen[resp.ServerId]++
	}
	// One client connection, RPCs on both sites.
	if seen["at-b"] == 0 || seen["at-c"] == 0 {
		t.Errorf("RPCs by server %v: one connection's RPCs were not balanced", seen)
	}
	// Status counts each site's answers of the last minute and its share.
	waitFor(t, "every RPC counted", func() bool {
		var n uint64
		for _, st := range w.site("a").m.CandidateStates("echo") {
			n += st.Recent
		}
		return n == 40
	})
	var share float64
	for id, st := range w.site("a").m.CandidateStates("echo") {
		name := map[string]string{w.site("b").fs.ID.String(): "at-b", w.site("c").fs.ID.String(): "at-c"}[id]
		if int(st.Recent) != seen[name] {
			t.Errorf("%s: %d answers counted, %d seen", name, st.Recent, seen[name])
		}
		share += st.Share
	}
	if share < 0.999 || share > 1.001 {
		t.Errorf("shares add up to %v", share)
	}
}

// grpcPair is a with a gRPC listener for "echo" and targets behind b
// (link cost 1) and c.
func grpcPair(t *testing.T, l resource.Listener, costC uint32) (w *world, tc testpb.TestServiceClient, atB, atC *grpctest.Server) {
	w = newWorld(t, "a", "b", "c")
	w.link("a", "b", 1)
	w.link("a", "c", costC)
	atB, atC = startGRPC(t, "at-b"), startGRPC(t, "at-c")
	w.connector("b", httpConnector("echo", "echo", atB.Addr))
	w.connector("c", httpConnector("echo", "echo", atC.Addr))
	tc, _ = dialGRPC(t, w.listener("a", l))
	return w, tc, atB, atC
}

func TestGRPCUnavailableIsRetriedWhenSafe(t *testing.T) {
	_, tc, atB, _ := grpcPair(t, httpListener("echo", ""), 2)
	atB.Fail.Store(int32(codes.Unavailable))

	// Not vouched for: a POST is not retried, the client sees b's status.
	_, err := tc.UnaryCall(grpcContext(t), &testpb.SimpleRequest{})
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != "at-b fails" {
		t.Fatalf("unsafe call: %v, want b's UNAVAILABLE", err)
	}
	// Weft-Hedge (gRPC metadata weft-hedge: 1) makes it safe: c answers.
	safe := metadata.AppendToOutgoingContext(grpcContext(t), "weft-hedge", "1")
	resp, err := tc.UnaryCall(safe, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("kept for the retry")}})
	if err != nil || resp.ServerId != "at-c" {
		t.Fatalf("safe call: %v %v, want c's answer", resp, err)
	}
	// A status the application chose is an answer, never retried.
	atB.Fail.Store(int32(codes.NotFound))
	if _, err := tc.UnaryCall(safe, &testpb.SimpleRequest{}); status.Code(err) != codes.NotFound {
		t.Fatalf("not found: %v, want b's answer", err)
	}
}

func TestGRPCUnavailableEjects(t *testing.T) {
	w, tc, atB, atC := grpcPair(t, httpListener("echo", ""), 2)
	atB.Fail.Store(int32(codes.Unavailable))
	// Five UNAVAILABLE answers in a row (Istio's default) eject b at a;
	// b's own balancer counts them too (its one connector is never
	// ejected: the last one stays).
	for range 5 {
		if _, err := tc.UnaryCall(grpcContext(t), &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("call: %v", err)
		}
	}
	waitFor(t, "b ejected", func() bool { return w.states("a", "echo")["b"].Status == balance.StatusEjected })
	// b counts an answer when its stream is done with it, which may be
	// after a has the answer and ejected b: wait for b's own view.
	waitFor(t, "b's connector to count the errors", func() bool {
		st := w.site("b").m.InstanceStates("echo")
		return len(st) == 1 && st[0].ConsecutiveErrors >= 5
	})
	if st := w.site("b").m.InstanceStates("echo"); len(st) != 1 || st[0].ConsecutiveErrors != 5 {
		t.Errorf("b's connector: %+v, want 5 errors", st)
	}
	before := atB.Calls.Load()
	for range 5 {
		resp, err := tc.UnaryCall(grpcContext(t), &testpb.SimpleRequest{})
		if err != nil || resp.ServerId != "at-c" {
			t.Fatalf("call while b is out: %v %v", resp, err)
		}
	}
	if atB.Calls.Load() != before || atC.Calls.Load() != 5 {
		t.Errorf("calls b=%d c=%d while b was ejected", atB.Calls.Load()-before, atC.Calls.Load())
	}
}

// A failure in the trailers of a full answer (the server sent headers,
// then UNAVAILABLE) counts against the target too, once the answer ends.
func TestGRPCStatusInTrailersCounts(t *testing.T) {
	w, tc, _, _ := grpcPair(t, httpListener("echo", ""), 2)
	for range 3 {
		bidi, err := tc.FullDuplexCall(grpcContext(t))
		if err != nil {
			t.Fatal(err)
		}
		bidi.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}})
		if _, err := bidi.Recv(); err != nil {
			t.Fatal(err)
		}
		bidi.Send(&testpb.StreamingOutputCallRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable), Message: "going away"}})
		if _, err := bidi.Recv(); status.Code(err) != codes.Unavailable {
			t.Fatalf("bidi: %v", err)
		}
	}
	waitFor(t, "three errors at b", func() bool { return w.states("a", "echo")["b"].Errors == 3 })
}

func TestGRPCHedgedUnary(t *testing.T) {
	_, tc, atB, atC := grpcPair(t, httpListener("echo", resource.HedgeAlways), 2)
	atB.Hold.Store(true) // b, the cheaper, never answers
	// c answers once b has the other copy, so that each loser is
	// cancelled at b's server rather than on its way there.
	gate := func(ctx context.Context) {
		for atB.Calls.Load() < atC.Calls.Load() && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
	}
	atC.Gate.Store(&gate)
	for i := range 3 {
		ctx := metadata.AppendToOutgoingContext(grpcContext(t), "weft-hedge", "1")
		resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{})
		if err != nil || resp.ServerId != "at-c" {
			t.Fatalf("call %d: %v %v, want c's answer", i, resp, err)
		}
		// The losing copy is cancelled at b's server.
		if err := waitEnded(t, atB); !errors.Is(err, context.Canceled) {
			t.Errorf("call %d: b's copy ended with %v, want cancelled", i, err)
		}
	}
	if atC.Calls.Load() != 3 {
		t.Errorf("c served %d calls, want 3", atC.Calls.Load())
	}
}
