package main

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"sync"
)

// castagnoli is CRC-32C, computed with the CPU's CRC instruction: cheap
// enough (many GB/s) that checking every byte of the bulk stream does not
// become what the benchmark measures.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sinkReplyLen is the sink's answer after the client half-closes: the number
// of bytes received (uint64) and their CRC-32C (uint32), big endian.
const sinkReplyLen = 12

// server is an in-process TCP server on 127.0.0.1 that serves each
// connection with handle until it is closed.
type server struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	handle func(net.Conn)
}

func newServer(handle func(net.Conn)) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{ln: ln, conns: map[net.Conn]struct{}{}, handle: handle}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.conns == nil { // closing
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.handle(c)
		}()
	}
}

// close stops accepting, closes open connections (a client stuck on a broken
// proxy would otherwise keep a handler alive) and waits for the handlers.
func (s *server) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// echo writes back whatever arrives until EOF. A plain read/write loop rather
// than io.Copy so that every path sees the same server behaviour (io.Copy
// between TCP sockets may switch to splice).
func echo(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sink reads until EOF, then reports the byte count and CRC-32C so that the
// client can check the stream arrived intact and in order.
func sink(c net.Conn) {
	buf := make([]byte, 256<<10)
	var n uint64
	var sum uint32
	for {
		k, err := c.Read(buf)
		if k > 0 {
			n += uint64(k)
			sum = crc32.Update(sum, castagnoli, buf[:k])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
	}
	var reply [sinkReplyLen]byte
	binary.BigEndian.PutUint64(reply[:8], n)
	binary.BigEndian.PutUint32(reply[8:], sum)
	c.Write(reply[:])
}
