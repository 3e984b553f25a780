package e2e

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"weft.dev/weft/internal/service/grpctest"
)

// TestGRPCThroughTwoHops: a grpc-go client at site a, grpc-go servers at
// sites b and c, every path through the transit site t, nothing but
// --protocol http on the listener and the connectors. Unary calls with
// metadata and binary trailers, a status with its message, the health
// service, server and bidirectional streams, a cancellation that reaches
// the server, and RPCs of one connection spread over b and c.
func TestGRPCThroughTwoHops(t *testing.T) {
	a, tr, b, c := startSite(t, "a"), startSite(t, "t"), startSite(t, "b"), startSite(t, "c")
	a.linkTo(tr)
	b.linkTo(tr)
	c.linkTo(tr)
	servers := map[string]*grpctest.Server{}
	for _, s := range []*site{b, c} {
		srv, err := grpctest.Start("at-"+s.name, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		servers[s.name] = srv
		s.weft("connector", "create", "echo", "--target", srv.Addr, "--protocol", "http")
	}
	waitServed(t, a, "echo", "b", "c")
	addr := strings.TrimPrefix(a.listenHTTP("echo"), "http://")
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	tc := testpb.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	seen := map[string]int{}
	for range 20 {
		var trailer metadata.MD
		resp, err := tc.UnaryCall(metadata.AppendToOutgoingContext(ctx, grpctest.MDEcho, "x"), &testpb.SimpleRequest{ResponseSize: 100}, grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if got := trailer.Get(grpctest.MDTrailerBin); len(got) != 1 || got[0] != grpctest.TrailerBin {
			t.Fatalf("binary trailer %q", got)
		}
		seen[resp.ServerId]++
	}
	if seen["at-b"] == 0 || seen["at-c"] == 0 {
		t.Errorf("RPCs of one connection by server: %v, want both", seen)
	}

	_, err = tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "not now"}})
	if st := grpcstatus.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "not now" {
		t.Errorf("status: %v", err)
	}
	if h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v %v", h, err)
	}

	bidi, err := tc.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: int32(i * 10000)}}}); err != nil {
			t.Fatal(err)
		}
		if r, err := bidi.Recv(); err != nil || len(r.Payload.Body) != i*10000 {
			t.Fatalf("bidi round %d: %v", i, err)
		}
	}
	bidi.CloseSend()
	if _, err := bidi.Recv(); err != io.EOF {
		t.Errorf("bidi end: %v", err)
	}

	// Cancelled by the client after the first message: the server that
	// holds the stream sees its context end.
	held, stop := context.WithCancel(metadata.AppendToOutgoingContext(ctx, grpctest.MDHold, "1"))
	out, err := tc.StreamingOutputCall(held, &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Recv(); err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case err := <-servers["b"].Ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("b saw %v", err)
		}
	case err := <-servers["c"].Ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("c saw %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancellation never reached the server")
	}
}
