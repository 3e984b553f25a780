package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// leanPoster is the harness's HTTP/1.1 client for the POST rows (-post-client
// lean, the default): one keep-alive connection per publisher; the request
// is written with one write and the answer read with net/http's parser
// (http.ReadResponse), both in the publisher's goroutine, as wrk does.
// net/http's client hands each request to its connection's write
// goroutine and the answer back from its read goroutine; on this 2-core
// machine that cost the probe about 13 µs (bench/README.md, "Persisted
// latency, one POST per batch"), time spent in the harness and charged to
// weft. Not safe for concurrent use: each publisher has its own.
type leanPoster struct {
	host, path string
	conn       net.Conn
	br         *bufio.Reader
	buf        []byte
}

func newLeanPoster(rawURL string) (*leanPoster, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("lean client: %q is not an http:// URL (%v)", rawURL, err)
	}
	return &leanPoster{host: u.Host, path: u.RequestURI()}, nil
}

// post sends body with the header fields kv (name, value, ...) and returns
// the answer's status and body. A kept-alive connection the site closed is
// dialled again once.
func (p *leanPoster) post(ctx context.Context, kv []string, body []byte) (int, []byte, error) {
	p.buf = append(p.buf[:0], "POST "...)
	p.buf = append(p.buf, p.path...)
	p.buf = append(p.buf, " HTTP/1.1\r\nHost: "...)
	p.buf = append(p.buf, p.host...)
	p.buf = append(p.buf, "\r\nContent-Length: "...)
	p.buf = strconv.AppendInt(p.buf, int64(len(body)), 10)
	for i := 0; i+1 < len(kv); i += 2 {
		p.buf = append(p.buf, "\r\n"...)
		p.buf = append(p.buf, kv[i]...)
		p.buf = append(p.buf, ": "...)
		p.buf = append(p.buf, kv[i+1]...)
	}
	p.buf = append(append(p.buf, "\r\n\r\n"...), body...)
	for attempt := 0; ; attempt++ {
		reused := p.conn != nil
		status, answer, err := p.roundTrip(ctx)
		if err == nil {
			return status, answer, nil
		}
		p.close()
		if !reused || attempt > 0 || ctx.Err() != nil {
			return 0, nil, err
		}
	}
}

func (p *leanPoster) roundTrip(ctx context.Context) (int, []byte, error) {
	if p.conn == nil {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.host)
		if err != nil {
			return 0, nil, err
		}
		p.conn, p.br = c, bufio.NewReaderSize(c, 4<<10)
	}
	// As the net/http client's Timeout.
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	p.conn.SetDeadline(deadline)
	if _, err := p.conn.Write(p.buf); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return 0, nil, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	if resp.Close {
		p.close()
	}
	return resp.StatusCode, answer, nil
}

func (p *leanPoster) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn, p.br = nil, nil
	}
}
