package seal_test

import (
	"io"
	"syscall"
	"testing"
	"time"
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
	open := benchSites(b, func(conn benchConn) {
		io.Copy(io.Discard, conn)
		conn.CloseWrite()
		conn.Close()
	})
	block := make([]byte, 256<<10)
	for _, mode := range []string{"plain", "sealed"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(size)
			var ru0 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			for b.Loop() {
				conn, err := open(mode)
				if err != nil {
					b.Fatal(err)
				}
				// io.Copy: ReadFrom, as forward.Join at the ingress.
				if n, err := io.Copy(conn, &source{block: block, n: size}); n != size || err != nil {
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
