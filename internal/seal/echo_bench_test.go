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

// benchConn is either end of a benchmark's stream: a link stream or a
// sealed one.
type benchConn interface {
	net.Conn
	CloseWrite() error
}

// benchSites links sites a and c in process (a real link session on
// net.Pipe) and serves every stream c accepts with serve, sealed end to
// end when its address is "sealed" on a session made by the first one.
// open opens a stream from a to c with address mode, "plain" or "sealed".
func benchSites(b *testing.B, serve func(benchConn)) (open func(mode string) (benchConn, error)) {
	m := forwardtest.New(b)
	a, c := m.Site("a"), m.Site("c")
	m.Link(a, c)
	keyA, _ := seal.GenerateKey(nil)
	keyC, _ := seal.GenerateKey(nil)
	in := seal.NewInitiator(seal.Config{Self: a.ID, Key: keyA})
	resp := seal.NewResponder(seal.Config{Self: c.ID, Key: keyC})
	peerKey := func(siteid.ID) ([seal.KeyLen]byte, bool) { return keyA.Public, true }
	c.SetDeliver(func(st *link.Stream, h *forward.Header) {
		var conn benchConn = st
		if h.Address == "sealed" {
			sc, err := resp.Accept(st, h, peerKey)
			if err != nil || sc.Confirm() != nil {
				return
			}
			conn = sc
		} else if st.Confirm() != nil {
			return
		}
		serve(conn)
	})
	linkOpen := func(ctx context.Context, h *forward.Header) (seal.Stream, error) { return forward.Open(ctx, a, h) }
	return func(mode string) (benchConn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h := forward.NewHeader(forward.KindTCP, mode, a.ID, []siteid.ID{c.ID})
		if mode == "sealed" {
			return in.Open(ctx, h, keyC.Public, linkOpen)
		}
		return forward.Open(ctx, a, h)
	}
}

// BenchmarkStreamEcho is a whole short stream, as the new-connection
// benchmark makes them (bench/tcp): open a to c over a real link session
// (net.Pipe, in process), one byte there and back, both halves closed,
// each end's half-close after its last byte. plain is a bare link stream,
// sealed the same stream sealed end to end on an established session: the
// difference is what sealing costs a new connection in CPU and
// allocations, without sockets or the machine's load.
func BenchmarkStreamEcho(b *testing.B) {
	open := benchSites(b, func(conn benchConn) {
		io.Copy(conn, conn)
		conn.CloseWrite()
		conn.Close()
	})
	for _, mode := range []string{"plain", "sealed"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			one := make([]byte, 1)
			for b.Loop() {
				conn, err := open(mode)
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
