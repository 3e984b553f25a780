package seal_test

import (
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/forward/forwardtest"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/seal"
	"weft.dev/weft/internal/siteid"
)

// source is a client connection that has n bytes to send: each read
// copies, as a read from a socket does.
type source struct {
	block []byte
	n     int64
}

func (s *source) Read(p []byte) (int, error) {
	if s.n == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(int64(len(p)), s.n)], s.block)
	s.n -= int64(k)
	return k, nil
}

// BenchmarkStreamBulk is one bulk transfer of 64 MiB from a to c over a
// real link session (net.Pipe, in process, no TLS), as forward.Join moves
// it: ReadFrom the client at the ingress, WriteTo the server at the
// egress. plain is a bare link stream, sealed the same stream sealed end
// to end. It reports the CPU time of the whole process per byte
// (cpu-ns/B), which the machine's load moves less than the wall time.
func BenchmarkStreamBulk(b *testing.B) {
	const size = 64 << 20
	m := forwardtest.New(b)
	a, c := m.Site("a"), m.Site("c")
	m.Link(a, c)
	keyA, _ := seal.GenerateKey(nil)
	keyC, _ := seal.GenerateKey(nil)
	in := seal.NewInitiator(seal.Config{Self: a.ID, Key: keyA})
	resp := seal.NewResponder(seal.Config{Self: c.ID, Key: keyC})
	peerKey := func(siteid.ID) ([seal.KeyLen]byte, bool) { return keyA.Public, true }
	c.SetDeliver(func(st *link.Stream, h *forward.Header) {
		var conn interface {
			net.Conn
			CloseWrite() error
		} = st
		if h.Address == "sealed" {
			sc, err := resp.Accept(st, h, peerKey)
			if err != nil || sc.Confirm() != nil {
				return
			}
			conn = sc
		} else if st.Confirm() != nil {
			return
		}
		io.Copy(io.Discard, conn)
		conn.CloseWrite()
		conn.Close()
	})
	open := func(ctx context.Context, h *forward.Header) (seal.Stream, error) { return forward.Open(ctx, a, h) }
	block := make([]byte, 256<<10)
	for _, mode := range []string{"plain", "sealed"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(size)
			var ru0 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				h := forward.NewHeader(forward.KindTCP, mode, a.ID, []siteid.ID{c.ID})
				var conn interface {
					net.Conn
					io.ReaderFrom
					CloseWrite() error
				}
				var err error
				if mode == "sealed" {
					conn, err = in.Open(ctx, h, keyC.Public, open)
				} else {
					conn, err = forward.Open(ctx, a, h)
				}
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				if n, err := conn.ReadFrom(&source{block: block, n: size}); n != size || err != nil {
					b.Fatalf("sent %d: %v", n, err)
				}
				conn.CloseWrite()
				if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
					b.Fatalf("after the transfer: %v, want EOF", err)
				}
				conn.Close()
			}
			var ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(float64(cpu)/float64(b.N)/size, "cpu-ns/B")
		})
	}
}
