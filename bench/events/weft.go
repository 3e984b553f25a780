package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// weftSites runs `weft site run` a and b, links a to b (b issues the token,
// a redeems it) and returns the event API URLs.
func weftSites(ctx context.Context, cl *cleanups, bin string) (evA, evB, dirA string, procs []*proc, err error) {
	tmp, err := os.MkdirTemp("", "weft-bench-events-")
	if err != nil {
		return "", "", "", nil, err
	}
	cl.add(func() { os.RemoveAll(tmp) })
	urls := map[string]string{}
	dirs := map[string]string{}
	for _, name := range []string{"a", "b"} {
		dir := filepath.Join(tmp, name)
		p, err := startProc(cl, "weft site "+name, bin, "site", "run", "--name", name, "--data", dir)
		if err != nil {
			return "", "", "", nil, err
		}
		procs = append(procs, p)
		dirs[name] = dir
		err = poll(ctx, 20*time.Second, "weft site "+name+" to be ready", func() error {
			if p.exited() {
				return fatal{fmt.Errorf("site exited: %s", p.out.String())}
			}
			b, err := os.ReadFile(filepath.Join(dir, "events.addr"))
			if err != nil || len(bytes.TrimSpace(b)) == 0 {
				return fmt.Errorf("no events.addr yet (%v)", err)
			}
			urls[name] = "http://" + strings.TrimSpace(string(b))
			return nil
		})
		if err != nil {
			return "", "", "", nil, err
		}
	}
	tok := filepath.Join(tmp, "token.yaml")
	if _, err := weftCLI(ctx, bin, dirs["b"], "token", "issue", "-o", tok); err != nil {
		return "", "", "", nil, err
	}
	if _, err := weftCLI(ctx, bin, dirs["a"], "link", "create", tok); err != nil {
		return "", "", "", nil, err
	}
	return urls["a"], urls["b"], dirs["a"], procs, nil
}

// weftCLI runs `weft --site DIR args...` and returns its standard output.
func weftCLI(ctx context.Context, bin, dir string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--site", dir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("weft %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// weftClient is shared by every publisher so that connections are kept
// alive and reused; one idle connection per worker is enough.
var weftClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

var weftIDs atomic.Int64

// weftPublisher posts to url: one event in binary mode, several as one
// application/cloudevents-batch+json request. A 429 or 503 (back-pressure)
// is waited out and retried, counting in the measured time.
func weftPublisher(url string) publisher {
	return func(ctx context.Context, n int) error {
		for {
			req, err := weftRequest(ctx, url, n)
			if err != nil {
				return err
			}
			resp, err := weftClient.Do(req)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusAccepted:
				return nil
			case http.StatusTooManyRequests, http.StatusServiceUnavailable:
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			default:
				return fmt.Errorf("publish to %s: %s: %s", url, resp.Status, body)
			}
		}
	}
}

func weftRequest(ctx context.Context, url string, n int) (*http.Request, error) {
	now := time.Now()
	if n == 1 {
		req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(payload(now)))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("ce-specversion", "1.0")
		req.Header.Set("ce-id", strconv.FormatInt(weftIDs.Add(1), 10))
		req.Header.Set("ce-source", "/bench")
		req.Header.Set("ce-type", "bench")
		return req, nil
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		// The payload is ASCII digits and 'x': a JSON string as it is.
		fmt.Fprintf(&b, `{"specversion":"1.0","id":"%d","source":"/bench","type":"bench","datacontenttype":"text/plain","data":"%s"}`, weftIDs.Add(1), payload(now))
	}
	b.WriteByte(']')
	req, err := http.NewRequestWithContext(ctx, "POST", url, &b)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	return req, nil
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
