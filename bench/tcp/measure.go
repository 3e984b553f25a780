package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"
)

// ioTimeout bounds every single read or write, so that a proxy that stalls
// fails the measurement instead of hanging the harness.
const ioTimeout = 10 * time.Second

// bulkPattern is what the bulk client sends: block i is a fixed random block
// with i in its first 8 bytes, so lost, duplicated or reordered blocks change
// the CRC. Random content keeps any compression along a path from flattering it.
type bulkPattern struct {
	block []byte
	total int64
	sum   uint32 // CRC-32C of the whole stream, computed once up front
}

const bulkBlock = 1 << 20

func newBulkPattern(total int64) *bulkPattern {
	p := &bulkPattern{block: make([]byte, bulkBlock), total: total}
	r := rand.New(rand.NewChaCha8([32]byte{'w', 'e', 'f', 't'}))
	for i := range p.block {
		p.block[i] = byte(r.Uint32())
	}
	p.each(func(b []byte) error {
		p.sum = crc32.Update(p.sum, castagnoli, b)
		return nil
	})
	return p
}

// each hands the stream to f one block at a time, reusing one buffer so that
// sending does not allocate.
func (p *bulkPattern) each(f func([]byte) error) error {
	var i uint64
	for sent := int64(0); sent < p.total; i++ {
		binary.BigEndian.PutUint64(p.block, i)
		n := min(int64(len(p.block)), p.total-sent)
		if err := f(p.block[:n]); err != nil {
			return err
		}
		sent += n
	}
	return nil
}

// measureBulk sends the pattern over one connection, half-closes, and waits
// for the sink's count and checksum. The time runs from the first write to
// the sink's answer, so bytes still queued inside a proxy are not counted as
// delivered. It returns MB/s (10^6 bytes per second).
func measureBulk(ctx context.Context, addr string, p *bulkPattern) (float64, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	start := time.Now()
	err = p.each(func(b []byte) error {
		c.SetWriteDeadline(time.Now().Add(ioTimeout))
		_, err := c.Write(b)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("bulk write: %w", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, fmt.Errorf("bulk half-close: %w", err)
	}
	var reply [sinkReplyLen]byte
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return 0, fmt.Errorf("bulk: reading the sink's checksum: %w", err)
	}
	elapsed := time.Since(start)
	n := binary.BigEndian.Uint64(reply[:8])
	sum := binary.BigEndian.Uint32(reply[8:])
	if n != uint64(p.total) || sum != p.sum {
		return 0, fmt.Errorf("bulk: sink received %d bytes with CRC-32C %08x, sent %d bytes with %08x", n, sum, p.total, p.sum)
	}
	return float64(p.total) / elapsed.Seconds() / 1e6, nil
}

// connResult is the outcome of the new-connection test.
type connResult struct {
	perSec float64
	ok     int64
	errs   int64
	first  error
}

// measureConns runs dialers goroutines for d, each repeatedly connecting,
// writing one byte, reading its echo and closing. Only completed round trips
// count: through a proxy, accept() alone proves nothing about the far side.
func measureConns(ctx context.Context, addr string, dialers int, d time.Duration) (connResult, error) {
	// The end is checked against the clock, not only through the context:
	// a dial whose deadline has passed fails at once, possibly before the
	// context's own timer has marked it done, and under load that gap
	// would otherwise turn into thousands of spurious failed attempts.
	end := time.Now().Add(d)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	over := func() bool { return ctx.Err() != nil || !time.Now().Before(end) }
	var (
		mu  sync.Mutex
		res connResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	for g := range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok, errs int64
			var first error
			b := byte(g)
			for !over() {
				b++
				err := oneConn(ctx, addr, b)
				switch {
				case err == nil:
					ok++
				case over():
					// The attempt was cut by the end of the test, not failed.
				default:
					errs++
					if first == nil {
						first = err
					}
				}
			}
			mu.Lock()
			res.ok += ok
			res.errs += errs
			if res.first == nil {
				res.first = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.perSec = float64(res.ok) / time.Since(start).Seconds()
	if res.ok == 0 {
		return res, fmt.Errorf("no connection completed: %v", res.first)
	}
	return res, nil
}

func oneConn(ctx context.Context, addr string, b byte) error {
	c, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write([]byte{b}); err != nil {
		return err
	}
	var got [1]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return err
	}
	if got[0] != b {
		return fmt.Errorf("echo returned %#x for %#x", got[0], b)
	}
	return nil
}

// latResult is the outcome of the request/response test.
type latResult struct {
	p50, p99 time.Duration
	perSec   float64
	n        int
}

// measureLatency opens conns connections and on each sends size-byte
// requests to the echo server one at a time for d, timing each full echo.
// Each request differs (a sequence number) and each answer is compared, so a
// proxy that mixes up streams or bytes fails the test.
func measureLatency(ctx context.Context, addr string, conns, size int, d time.Duration) (latResult, error) {
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	// Connect first so that the timed part is only request/response.
	for range conns {
		c, err := dial(ctx, addr)
		if err != nil {
			return latResult{}, err
		}
		cs = append(cs, c)
	}
	// As in measureConns, the clock decides the end, so that a request
	// cut by the deadline is not mistaken for a failure.
	end := time.Now().Add(d)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	over := func() bool { return ctx.Err() != nil || !time.Now().Before(end) }
	var (
		wg      sync.WaitGroup
		samples = make([][]time.Duration, conns)
		errs    = make([]error, conns)
	)
	start := time.Now()
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
			defer stop()
			req := make([]byte, size)
			resp := make([]byte, size)
			for j := range req {
				req[j] = byte(i + j)
			}
			// Preallocated so that appending does not pause the timed loop.
			s := make([]time.Duration, 0, 1<<14)
			for seq := uint64(0); !over(); seq++ {
				binary.BigEndian.PutUint64(req, seq)
				c.SetDeadline(time.Now().Add(ioTimeout))
				t0 := time.Now()
				if _, err := c.Write(req); err != nil {
					if !over() {
						errs[i] = err
					}
					break
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					if !over() {
						errs[i] = err
					}
					break
				}
				s = append(s, time.Since(t0))
				if !bytes.Equal(req, resp) {
					errs[i] = fmt.Errorf("connection %d: echo of request %d differs", i, seq)
					break
				}
			}
			samples[i] = s
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return latResult{}, err
	}
	all := slices.Concat(samples...)
	if len(all) == 0 {
		return latResult{}, errors.New("no request completed")
	}
	slices.Sort(all)
	return latResult{
		p50:    percentile(all, 50),
		p99:    percentile(all, 99),
		perSec: float64(len(all)) / elapsed.Seconds(),
		n:      len(all),
	}, nil
}

// percentile of sorted samples, nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

func dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: ioTimeout}
	return d.DialContext(ctx, "tcp", addr)
}

// roundTrip checks that a path carries one echo end to end; setups poll it
// before measuring, as a listener may accept before its route is usable.
func roundTrip(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return oneConn(ctx, addr, 0x5a)
}
