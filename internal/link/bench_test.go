package link

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/xtaci/smux"
)

// The benchmarks run weft's framing and two well-kept multiplexers over the
// same loopback connection type, so BENCH.md can compare like with like.
//
//	go test -run x -bench . -benchtime 2s ./internal/link

// mux is the common face of the three multiplexers.
type mux struct {
	open   func() (io.ReadWriteCloser, error)
	accept func() (io.ReadWriteCloser, error)
	close  func()
}

type muxMaker struct {
	name string
	make func(tb testing.TB, c, s net.Conn) mux
}

var muxes = []muxMaker{
	{"weft", func(tb testing.TB, c, s net.Conn) mux {
		cs, ss := Client(c, Config{}), Server(s, Config{})
		return mux{
			open: func() (io.ReadWriteCloser, error) { return cs.Open(context.Background(), nil) },
			accept: func() (io.ReadWriteCloser, error) {
				st, err := ss.Accept(context.Background())
				if err != nil {
					return nil, err
				}
				return st, st.Confirm()
			},
			close: func() {
				cs.Close()
				ss.Close()
				cs.wg.Wait()
				ss.wg.Wait()
			},
		}
	}},
	{"yamux", func(tb testing.TB, c, s net.Conn) mux {
		cfg := yamux.DefaultConfig()
		cfg.LogOutput = io.Discard
		cs, err := yamux.Client(c, cfg)
		if err != nil {
			tb.Fatal(err)
		}
		ss, err := yamux.Server(s, cfg)
		if err != nil {
			tb.Fatal(err)
		}
		return mux{
			open:   func() (io.ReadWriteCloser, error) { return cs.OpenStream() },
			accept: func() (io.ReadWriteCloser, error) { return ss.AcceptStream() },
			close:  func() { cs.Close(); ss.Close() },
		}
	}},
	{"smux", func(tb testing.TB, c, s net.Conn) mux {
		cfg := smux.DefaultConfig()
		cfg.Version = 2 // per-stream flow control, like weft and yamux
		cs, err := smux.Client(c, cfg)
		if err != nil {
			tb.Fatal(err)
		}
		ss, err := smux.Server(s, cfg)
		if err != nil {
			tb.Fatal(err)
		}
		return mux{
			open:   func() (io.ReadWriteCloser, error) { return cs.OpenStream() },
			accept: func() (io.ReadWriteCloser, error) { return ss.AcceptStream() },
			close:  func() { cs.Close(); ss.Close() },
		}
	}},
}

type connMaker struct {
	name string
	pair func(tb testing.TB) (net.Conn, net.Conn)
}

var conns = []connMaker{{"tcp", tcpPair}, {"tls", tlsPair}, {"tls-buffered", bufferedTLSPair}}

var (
	tlsOnce sync.Once
	tlsCert tls.Certificate
)

// tlsPair is a TLS 1.3 connection over TCP loopback, handshake done.
func tlsPair(tb testing.TB) (net.Conn, net.Conn) {
	a, b := tcpPair(tb)
	return tlsHandshake(tb, a, b)
}

// bufferedTLSPair is tlsPair over a BufferedConn on each side, as sites
// make their links.
func bufferedTLSPair(tb testing.TB) (net.Conn, net.Conn) {
	a, b := tcpPair(tb)
	return tlsHandshake(tb, NewBufferedConn(a), NewBufferedConn(b))
}

func tlsHandshake(tb testing.TB, a, b net.Conn) (net.Conn, net.Conn) {
	tlsOnce.Do(func() {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "bench"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			DNSNames:     []string{"bench"},
		}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		tlsCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	cc := tls.Client(a, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	sc := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS13})
	errc := make(chan error, 1)
	go func() { errc <- sc.Handshake() }()
	if err := cc.Handshake(); err != nil {
		tb.Fatal(err)
	}
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
	return cc, sc
}

func eachMux(b *testing.B, f func(b *testing.B, m mux)) {
	for _, cm := range conns {
		for _, mm := range muxes {
			b.Run(cm.name+"/"+mm.name, func(b *testing.B) {
				c, s := cm.pair(b)
				m := mm.make(b, c, s)
				defer m.close()
				f(b, m)
			})
		}
	}
}

const benchWrite = 64 << 10

func streamPair(b *testing.B, m mux) (io.ReadWriteCloser, io.ReadWriteCloser) {
	ch := make(chan io.ReadWriteCloser, 1)
	go func() {
		st, err := m.accept()
		if err != nil {
			b.Error(err)
		}
		ch <- st
	}()
	w, err := m.open()
	if err != nil {
		b.Fatal(err)
	}
	// yamux and smux announce a stream with its first data.
	if _, err := w.Write([]byte{0}); err != nil {
		b.Fatal(err)
	}
	r := <-ch
	if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	return w, r
}

// pump writes n benchWrite-sized writes to w while reading them from r.
func pump(b *testing.B, w io.Writer, r io.Reader, n int) {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, benchWrite)
		var err error
		for left := n * benchWrite; left > 0 && err == nil; {
			var k int
			k, err = r.Read(buf[:min(left, len(buf))])
			left -= k
		}
		done <- err
	}()
	buf := make([]byte, benchWrite)
	for range n {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBulk: one stream, 64 KiB writes, throughput in MB/s.
func BenchmarkBulk(b *testing.B) {
	eachMux(b, func(b *testing.B, m mux) {
		w, r := streamPair(b, m)
		b.SetBytes(benchWrite)
		b.ResetTimer()
		start := time.Now()
		pump(b, w, r, b.N)
		b.ReportMetric(float64(b.N*benchWrite)/1e6/time.Since(start).Seconds(), "MB/s")
	})
}

// BenchmarkParallel32: 32 streams at once, aggregate MB/s.
func BenchmarkParallel32(b *testing.B) {
	const streams = 32
	eachMux(b, func(b *testing.B, m mux) {
		type pair struct{ w, r io.ReadWriteCloser }
		ps := make([]pair, streams)
		for i := range ps {
			ps[i].w, ps[i].r = streamPair(b, m)
		}
		b.SetBytes(benchWrite)
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for i := range ps {
			n := b.N / streams
			if i < b.N%streams {
				n++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				pump(b, ps[i].w, ps[i].r, n)
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N*benchWrite)/1e6/time.Since(start).Seconds(), "MB/s")
	})
}

// BenchmarkOpenClose: a stream per iteration that is opened, accepted (and
// for weft confirmed), carries one byte each way, and is closed by both
// sides; 16 at a time.
func BenchmarkOpenClose(b *testing.B) {
	eachMux(b, func(b *testing.B, m mux) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // server: echo one byte and close
			defer wg.Done()
			for {
				st, err := m.accept()
				if err != nil {
					return
				}
				go func() {
					var one [1]byte
					if _, err := io.ReadFull(st, one[:]); err == nil {
						st.Write(one[:])
					}
					st.Close()
				}()
			}
		}()
		b.SetParallelism(8)
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			var one [1]byte
			for pb.Next() {
				st, err := m.open()
				if err != nil {
					b.Error(err)
					return
				}
				st.Write(one[:])
				if _, err := io.ReadFull(st, one[:]); err != nil {
					b.Error(err)
					return
				}
				st.Close()
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "opens/s")
		b.StopTimer()
		m.close()
		wg.Wait()
	})
}

// BenchmarkBulkRaw is the ceiling: the bare connection, no multiplexer.
func BenchmarkBulkRaw(b *testing.B) {
	for _, cm := range conns {
		b.Run(cm.name, func(b *testing.B) {
			c, s := cm.pair(b)
			defer c.Close()
			defer s.Close()
			b.SetBytes(benchWrite)
			b.ResetTimer()
			start := time.Now()
			pump(b, c, s, b.N)
			b.ReportMetric(float64(b.N*benchWrite)/1e6/time.Since(start).Seconds(), "MB/s")
		})
	}
}

// BenchmarkRelay is a site pair's data path for one bulk TCP connection:
// a client's TCP connection copied into a stream (ReadFrom), the link over
// TLS on BufferedConns, and the peer's stream copied to a TCP sink
// (WriteTo), as forward.Join does at the ingress and the egress. Besides
// MB/s it reports the process's CPU time per MB (user+system), which moves
// less than throughput on a shared machine.
func BenchmarkRelay(b *testing.B) {
	c, s := bufferedTLSPair(b)
	cs, ss := Client(c, Config{}), Server(s, Config{})
	defer func() {
		cs.Close()
		ss.Close()
		cs.wg.Wait()
		ss.wg.Wait()
	}()
	accepted := make(chan *Stream, 1)
	go func() {
		st, err := ss.Accept(context.Background())
		if err == nil {
			err = st.Confirm()
		}
		if err != nil {
			b.Error(err)
		}
		accepted <- st
	}()
	out, err := cs.Open(context.Background(), nil)
	if err != nil {
		b.Fatal(err)
	}
	in := <-accepted
	client, ingress := tcpPair(b)
	egress, sink := tcpPair(b)
	defer client.Close()
	defer sink.Close()
	copied := make(chan error, 2)
	go func() { _, err := io.Copy(out, ingress); out.CloseWrite(); copied <- err }()
	go func() { _, err := io.Copy(egress, in); egress.Close(); copied <- err }()
	received := make(chan int64, 1)
	go func() { // as bench/tcp's sink reads
		buf := make([]byte, 256<<10)
		var n int64
		for {
			k, err := sink.Read(buf)
			n += int64(k)
			if err != nil {
				received <- n
				return
			}
		}
	}()

	const write = 1 << 20 // the size bench/tcp's bulk client writes
	buf := make([]byte, write)
	b.SetBytes(write)
	ru0 := cpuTime()
	start := time.Now()
	b.ResetTimer()
	for range b.N {
		if _, err := client.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	client.(*net.TCPConn).CloseWrite()
	if n := <-received; n != int64(b.N)*write {
		b.Fatalf("sink received %d bytes, want %d", n, int64(b.N)*write)
	}
	b.StopTimer()
	mb := float64(b.N) * write / 1e6
	b.ReportMetric(mb/time.Since(start).Seconds(), "MB/s")
	b.ReportMetric(float64((cpuTime()-ru0).Microseconds())/mb, "cpu-µs/MB")
	for range 2 {
		if err := <-copied; err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the process's user plus system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
