// Package grpctest is a real gRPC target for tests and benchmarks of
// weft's HTTP path: grpc-go's interop TestService (unary, server, client
// and bidirectional streaming) implemented to expose what a proxy must
// keep (status codes and messages, header and trailer metadata, binary
// metadata, cancellation and deadlines, large messages), plus grpc-go's
// health service.
package grpctest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Metadata the server reads and writes.
const (
	// MDHold in a request makes the server hold the RPC (after the
	// responses it was asked for) until its context ends, which it
	// reports on Server.Ended.
	MDHold = "x-hold"
	// MDEcho and MDEchoBin in a request come back in the response
	// headers.
	MDEcho    = "x-echo"
	MDEchoBin = "x-echo-bin"
	// MDServer in the response headers and trailers names the server.
	MDServer = "x-server"
	// MDTrailerBin is a binary trailer of every unary answer: TrailerBin.
	MDTrailerBin = "x-trailer-bin"
)

// TrailerBin is the value of MDTrailerBin: bytes that are not text.
var TrailerBin = string([]byte{0, 1, 0xfe, 0xff, '\n'})

// MaxMessage is the largest message the server accepts and the size
// limit clients of tests should set.
const MaxMessage = 16 << 20

// Server is a running gRPC target.
type Server struct {
	Name string
	Addr string
	// Calls counts RPCs started.
	Calls atomic.Int64
	// Fail, when not 0, is a status code every unary RPC fails with at
	// once, as a trailers-only answer.
	Fail atomic.Int32
	// Hold makes the server hold every RPC as MDHold does.
	Hold atomic.Bool
	// Gate, when set, runs at the start of every RPC after it is counted,
	// before any answer; a test uses it to order servers' answers.
	Gate atomic.Pointer[func(context.Context)]
	// Ended receives the error of each held RPC's context when it ends
	// (context.Canceled or DeadlineExceeded): proof that a client's
	// cancellation or deadline reached the server.
	Ended chan error

	srv    *grpc.Server
	health *health.Server
	done   chan struct{}
}

// Start serves on a loopback port: h2c, or TLS with cert when it is not
// nil.
func Start(name string, cert *tls.Certificate) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxMessage), grpc.MaxSendMsgSize(MaxMessage)}
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*cert}})))
	}
	s := &Server{
		Name: name, Addr: ln.Addr().String(),
		Ended:  make(chan error, 64),
		srv:    grpc.NewServer(opts...),
		health: health.NewServer(),
		done:   make(chan struct{}),
	}
	testpb.RegisterTestServiceServer(s.srv, &service{s: s})
	healthpb.RegisterHealthServer(s.srv, s.health)
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s, nil
}

// SetServing sets the health service's overall status.
func (s *Server) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_SERVING
	if !ok {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus("", st)
}

// Stop ends every RPC and the server.
func (s *Server) Stop() {
	s.srv.Stop()
	<-s.done
}

type service struct {
	testpb.UnimplementedTestServiceServer
	s *Server
}

// begin counts an RPC, sends the response headers (echoing what the
// client asked) and tells whether the client asked to hold the RPC.
func (v *service) begin(ctx context.Context) (hold bool) {
	v.s.Calls.Add(1)
	if g := v.s.Gate.Load(); g != nil {
		(*g)(ctx)
	}
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.Pairs(MDServer, v.s.Name)
	for _, k := range []string{MDEcho, MDEchoBin} {
		if vs := in.Get(k); len(vs) > 0 {
			out.Append(k, vs...)
		}
	}
	grpc.SetHeader(ctx, out)
	grpc.SetTrailer(ctx, metadata.Pairs(MDServer, v.s.Name, MDTrailerBin, TrailerBin))
	return len(in.Get(MDHold)) > 0 || v.s.Hold.Load()
}

// hold waits for ctx to end, reports it and returns its status.
func (v *service) hold(ctx context.Context) error {
	<-ctx.Done()
	v.s.Ended <- ctx.Err()
	return status.FromContextError(ctx.Err()).Err()
}

func payload(n int32) *testpb.Payload {
	return &testpb.Payload{Body: make([]byte, n)}
}

func (v *service) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	if v.begin(ctx) {
		return nil, v.hold(ctx)
	}
	return &testpb.Empty{}, nil
}

func (v *service) UnaryCall(ctx context.Context, r *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if c := v.s.Fail.Load(); c != 0 {
		v.s.Calls.Add(1)
		return nil, status.Errorf(codes.Code(c), "%s fails", v.s.Name)
	}
	if v.begin(ctx) {
		return nil, v.hold(ctx)
	}
	if st := r.GetResponseStatus(); st != nil && st.Code != 0 {
		return nil, status.Error(codes.Code(st.Code), st.Message)
	}
	return &testpb.SimpleResponse{Payload: payload(r.GetResponseSize()), ServerId: v.s.Name}, nil
}

func (v *service) StreamingOutputCall(r *testpb.StreamingOutputCallRequest, st grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	hold := v.begin(st.Context())
	for _, p := range r.GetResponseParameters() {
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: payload(p.GetSize())}); err != nil {
			return err
		}
	}
	if hold {
		return v.hold(st.Context())
	}
	return nil
}

func (v *service) StreamingInputCall(st grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	v.begin(st.Context())
	var n int32
	for {
		r, err := st.Recv()
		if err == io.EOF {
			return st.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: n})
		}
		if err != nil {
			return err
		}
		n += int32(len(r.GetPayload().GetBody()))
	}
}

// FullDuplexCall answers each request as it comes with the responses it
// asks for, so a client sees every answer before it sends the next.
func (v *service) FullDuplexCall(st grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	v.begin(st.Context())
	for {
		r, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if s := r.GetResponseStatus(); s != nil && s.Code != 0 {
			return status.Error(codes.Code(s.Code), s.Message)
		}
		for _, p := range r.GetResponseParameters() {
			if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: payload(p.GetSize())}); err != nil {
				return err
			}
		}
	}
}
