package seal_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/forward/forwardtest"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/seal"
	"weft.dev/weft/internal/siteid"
)

// BenchmarkStreamEcho is a whole short stream, as the new-connection
// benchmark makes them (bench/tcp): open a to c over a real link session
// (net.Pipe, in process), one byte there and back, both halves closed,
// each end's half-close after its last byte. plain is a bare link stream,
// sealed the same stream sealed end to end on an established session: the
// difference is what sealing costs a new connection in CPU and
// allocations, without sockets or the machine's load.
func BenchmarkStreamEcho(b *testing.B) {
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
			if err != nil {
				return
			}
			conn = sc
			err = sc.Confirm()
			if err != nil {
				return
			}
		} else if st.Confirm() != nil {
			return
		}
		io.Copy(conn, conn)
		conn.CloseWrite()
		conn.Close()
	})
	open := func(ctx context.Context, h *forward.Header) (seal.Stream, error) { return forward.Open(ctx, a, h) }
	for _, mode := range []string{"plain", "sealed"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			one := make([]byte, 1)
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				h := forward.NewHeader(forward.KindTCP, mode, a.ID, []siteid.ID{c.ID})
				var conn interface {
					net.Conn
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
				conn.Write(one)
				conn.CloseWrite()
				if n, err := io.ReadFull(conn, one); n != 1 || err != nil {
					b.Fatalf("echo: %d %v", n, err)
				}
				if _, err := conn.Read(one); err != io.EOF {
					b.Fatalf("after the echo: %v, want EOF", err)
				}
				conn.Close()
			}
		})
	}
}
