package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
	"weft.dev/weft/internal/events/pubclient"
)

// weftSites runs sites a and b, linked a to b, with extra `site run`
// arguments, and returns their event API URLs and a's data directory.
func weftSites(ctx context.Context, cl *benchproc.Cleanups, bin string, extra ...string) (evA, evB, dirA string, procs []*benchproc.Proc, err error) {
	a, b, procs, err := benchproc.WeftPair(ctx, cl, bin, extra...)
	if err != nil {
		return "", "", "", nil, err
	}
	urls := map[string]string{}
	for name, dir := range map[string]string{"a": a, "b": b} {
		addr, err := os.ReadFile(filepath.Join(dir, "events.addr"))
		if err != nil || len(bytes.TrimSpace(addr)) == 0 {
			return "", "", "", nil, fmt.Errorf("site %s is ready but has no events.addr (%v)", name, err)
		}
		urls[name] = "http://" + strings.TrimSpace(string(addr))
	}
	return urls["a"], urls["b"], a, procs, nil
}

// weftClient is shared by every publisher of -post-client net/http so
// that connections are kept alive and reused; one idle connection per
// worker is enough.
var weftClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

var weftIDs atomic.Int64

// weftPublisher posts to url: one event in binary mode, several as one
// application/cloudevents-batch+json request, with the client -post-client
// names. A 429 or 503 (back-pressure) is waited out and retried, counting
// in the measured time.
func weftPublisher(cl *benchproc.Cleanups, url, client string) (publisher, error) {
	post := func(ctx context.Context, kv []string, body []byte) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			req.Header.Set(kv[i], kv[i+1])
		}
		resp, err := weftClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, answer, nil
	}
	switch client {
	case "net/http":
	case "lean", "": // the default
		lp, err := newLeanPoster(url)
		if err != nil {
			return nil, err
		}
		cl.Add(lp.close)
		post = lp.post
	default:
		return nil, fmt.Errorf("-post-client %q: lean or net/http", client)
	}
	return func(ctx context.Context, n int) error {
		for {
			kv, body := weftRequest(n)
			status, answer, err := post(ctx, kv, body)
			if err != nil {
				return err
			}
			switch status {
			case http.StatusAccepted:
				return nil
			case http.StatusTooManyRequests, http.StatusServiceUnavailable:
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			default:
				return fmt.Errorf("publish to %s: %d %s: %s", url, status, http.StatusText(status), answer)
			}
		}
	}, nil
}

// weftRequest is the header fields (name, value, ...) and body of a
// publish of n events sent now.
func weftRequest(n int) (kv []string, body []byte) {
	now := time.Now()
	if n == 1 {
		return []string{"Content-Type", "text/plain", "ce-specversion", "1.0", "ce-id", strconv.FormatInt(weftIDs.Add(1), 10),
			"ce-source", "/bench", "ce-type", "bench"}, payload(now)
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(weftEvent(now))
	}
	b.WriteByte(']')
	return []string{"Content-Type", "application/cloudevents-batch+json"}, b.Bytes()
}

// weftEvent is one event in structured JSON, sent at now.
func weftEvent(now time.Time) []byte {
	// The payload is ASCII digits and 'x': a JSON string as it is.
	return fmt.Appendf(nil, `{"specversion":"1.0","id":"%d","source":"/bench","type":"bench","datacontenttype":"text/plain","data":"%s"}`, weftIDs.Add(1), payload(now))
}

// weftStreamPublisher publishes over a publish stream (ws://.../publish):
// n events as one batch, returning without waiting for the site's answer,
// as `weft bench pub` keeps many batches in flight; the stream's window
// holds it when the site does not keep up. A refused batch fails the next
// call.
func weftStreamPublisher(ctx context.Context, cl *benchproc.Cleanups, url string) (publisher, error) {
	var refused atomic.Pointer[error]
	p, err := pubclient.Dial(ctx, url, pubclient.Options{OnAnswer: func(_ uint64, err error) {
		if err != nil {
			refused.CompareAndSwap(nil, &err)
		}
	}})
	if err != nil {
		return nil, err
	}
	cl.Add(func() { p.Close() })
	return func(ctx context.Context, n int) error {
		if err := refused.Load(); err != nil {
			return *err
		}
		now := time.Now()
		evs := make([][]byte, n)
		for i := range evs {
			evs[i] = weftEvent(now)
		}
		_, err := p.Publish(ctx, evs)
		return err
	}, nil
}

// weftSubscribe streams url (SSE) into s until ctx ends. It returns once
// the stream is open, so that the site has registered the interest.
func weftSubscribe(ctx context.Context, url string, s *sink) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fmt.Errorf("subscribe %s: %s", url, resp.Status)
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		key := []byte(`"data":"`)
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.HasPrefix(line, []byte("data: ")) {
				continue
			}
			if i := bytes.Index(line, key); i >= 0 {
				s.got(line[i+len(key):])
			}
		}
	}()
	return nil
}
