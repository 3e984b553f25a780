package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// attempts counts the outcomes of one kind of client attempt (an HTTP
// request, a TCP connection) and keeps the failures, to be classified once
// the run is over.
type attempts struct {
	mu       sync.Mutex
	ok       int
	failures []failure
}

type failure struct {
	start, end time.Time
	err        error
}

func (a *attempts) record(start time.Time, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.ok++
		return
	}
	a.failures = append(a.failures, failure{start, time.Now(), err})
}

// totals returns the successes and the failures.
func (a *attempts) totals() (ok, failed int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ok, len(a.failures)
}

// maxSamples bounds the failures shown per class.
const maxSamples = 8

// byClass counts the failures by class and describes the first few of each.
func (a *attempts) byClass(h history) (n [nClasses]int, samples [nClasses][]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.failures {
		c := h.classify(f.start, f.end)
		n[c]++
		if len(samples[c]) < maxSamples {
			samples[c] = append(samples[c], fmt.Sprintf("%s (+%v) %v", clock(f.start), f.end.Sub(f.start).Round(time.Millisecond), f.err))
		}
	}
	return n, samples
}

// paced calls f every pace until stop is closed. f runs to its end: an
// attempt cut short by the harness would count as a failure.
func paced(stop <-chan struct{}, pace time.Duration, f func()) {
	t := time.NewTicker(pace)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		f()
	}
}

// publisher publishes persisted events to url, batch events at a time at
// rate events a second, with ids prefix-00000000, prefix-00000001, ...
// A batch that is not acknowledged with 202 is sent again, the same ids,
// until it is: weft drops a publisher's retry of an event it stored, and
// only acknowledged events count as published.
type publisher struct {
	url, prefix string
	rate, batch int
	tally       *tally
	client      *http.Client

	mu      sync.Mutex
	retries int
	lastErr string
}

func (p *publisher) run(ctx context.Context, stop <-chan struct{}) error {
	seq := 0
	var err error
	paced(stop, time.Duration(p.batch)*time.Second/time.Duration(p.rate), func() {
		if err != nil {
			return
		}
		ids := make([]string, p.batch)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%08d", p.prefix, seq)
			seq++
		}
		err = p.send(ctx, ids)
	})
	return err
}

// send publishes ids until they are acknowledged or ctx ends.
func (p *publisher) send(ctx context.Context, ids []string) error {
	body := batchBody(ids)
	for {
		err := p.post(ctx, body)
		if err == nil {
			p.tally.acknowledged(ids)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.mu.Lock()
		p.retries++
		p.lastErr = err.Error()
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *publisher) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, "POST", p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

func batchBody(ids []string) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"specversion":"1.0","id":%q,"source":"/chaos","type":"chaos","datacontenttype":"application/json","data":{"id":%q}}`, id, id)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func (p *publisher) retried() (int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retries, p.lastErr
}

// httpClient sends GETs through the HTTP listener and expects the name of
// a site serving the address.
type httpClient struct {
	url    string
	client *http.Client
	stats  *attempts
}

func (h *httpClient) run(ctx context.Context, stop <-chan struct{}, pace time.Duration) {
	n := 0
	paced(stop, pace, func() {
		n++
		start := time.Now()
		h.stats.record(start, h.get(ctx, n))
	})
}

func (h *httpClient) get(ctx context.Context, n int) error {
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/req/%d", h.url, n), nil)
	if err != nil {
		return err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return fmt.Errorf("%s, body cut short: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if !slices.Contains(httpSites, strings.TrimSpace(string(b))) {
		return fmt.Errorf("answer %q is from no backend", b)
	}
	return nil
}

// tcpClient opens short connections through the TCP listener: it reads the
// backend's greeting (its site's name), sends a line, expects it back and
// closes.
type tcpClient struct {
	addr  string
	stats *attempts
}

// tcpTimeout bounds one connection: a hang is a failure, not a stall of
// the whole run.
const tcpTimeout = 10 * time.Second

func (c *tcpClient) run(ctx context.Context, stop <-chan struct{}, pace time.Duration) {
	n := 0
	paced(stop, pace, func() {
		n++
		start := time.Now()
		c.stats.record(start, c.echo(ctx, n))
	})
}

func (c *tcpClient) echo(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, tcpTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The deadline ends a blocked read when ctx does.
	stopAfter := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stopAfter()
	r := bufio.NewReader(conn)
	site, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("no greeting: %w", err)
	}
	site = strings.TrimSpace(site)
	if !slices.Contains(tcpSites, site) {
		return fmt.Errorf("greeting %q is from no backend", site)
	}
	msg := fmt.Sprintf("ping %d\n", n)
	if _, err := io.WriteString(conn, msg); err != nil {
		return fmt.Errorf("via %s: write: %w", site, err)
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("via %s: no echo: %w", site, err)
	}
	if got != msg {
		return fmt.Errorf("via %s: echo %q, want %q", site, got, msg)
	}
	return nil
}
