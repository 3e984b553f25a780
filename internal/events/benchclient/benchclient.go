// Package benchclient measures a site's event API as `nats bench` measures
// NATS: Pub publishes a number of events of a given size from several
// publish streams at once and reports the rate at which the site
// acknowledged them, Sub subscribes several times and reports the rate at
// which they arrived and how long each took from its publisher. `weft bench
// pub|sub` runs them.
//
// Each event is a structured-mode CloudEvent of type EventType whose data is
// {"t":NANOS,"p":"xxx..."}: the time it was published (Unix nanoseconds, on
// the publisher's clock) and padding to Size bytes of data. A subscriber on
// another host reads latency through the difference of the two clocks.
package benchclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"weft.dev/weft/internal/events/pubclient"
)

// EventType is the CloudEvents type of the events a benchmark publishes;
// subscribers count only these.
const EventType = "dev.weft.bench"

// Config is what both ends need.
type Config struct {
	// Base is the event API, http://host:port.
	Base string
	// Path is the name's path: /v1/events/NAME, /v1/topics/NAME or
	// /v1/queues/NAME.
	Path string
	// Authorization is the Authorization header, or "".
	Authorization string
	// Msgs is how many events are published in all (Pub), or how many each
	// subscriber waits for (Sub; for a queue, all subscribers together).
	Msgs int
}

// PubConfig configures Pub.
type PubConfig struct {
	Config
	Size  int // bytes of data per event
	Pubs  int // publish streams, each publishing Msgs/Pubs events
	Batch int // events per batch
}

// Stats are one side's figures.
type Stats struct {
	Msgs    int           // events published and acknowledged (Pub), or received (Sub)
	Refused int           // events in refused batches (Pub)
	Missing int           // events not received before the idle timeout (Sub)
	Elapsed time.Duration // first publish to last acknowledgement, or first receipt to last
	Size    int           // data bytes per event
	// Latency is, for Pub, each batch's time from sending to its
	// acknowledgement; for Sub, each event's from publish to receipt.
	Latency []time.Duration
}

// Rate is events per second.
func (s Stats) Rate() float64 { return float64(s.Msgs) / max(s.Elapsed.Seconds(), 1e-9) }

// MiBRate is data MiB per second, as `nats bench` counts payload.
func (s Stats) MiBRate() float64 { return s.Rate() * float64(s.Size) / (1 << 20) }

// Percentile is the q-quantile (0..1) of the latencies to the
// microsecond, 0 without any.
func (s Stats) Percentile(q float64) time.Duration {
	if len(s.Latency) == 0 {
		return 0
	}
	l := slices.Clone(s.Latency)
	slices.Sort(l)
	return l[min(len(l)-1, int(q*float64(len(l))))].Round(time.Microsecond)
}

// Line is the figures as one line of key=value pairs, which `weft bench`
// prints and scripts parse.
func (s Stats) Line(name string) string {
	return fmt.Sprintf("%s msgs=%d refused=%d missing=%d secs=%.3f msgs/s=%.0f MiB/s=%.2f p50=%s p90=%s p99=%s max=%s",
		name, s.Msgs, s.Refused, s.Missing, s.Elapsed.Seconds(), s.Rate(), s.MiBRate(),
		s.Percentile(0.5), s.Percentile(0.9), s.Percentile(0.99), s.Percentile(1))
}

// Pub publishes c.Msgs events over c.Pubs publish streams and returns the
// total and each stream's figures. Refused batches are counted, not retried.
func Pub(ctx context.Context, c PubConfig) (Stats, []Stats, error) {
	if c.Msgs <= 0 || c.Pubs <= 0 || c.Batch <= 0 || c.Size < 0 {
		return Stats{}, nil, errors.New("--msgs, --pubs and --batch must be above 0, --size at least 0")
	}
	url := "ws" + strings.TrimPrefix(c.Base, "http") + c.Path + "/publish"
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	ws := make([]*publisher, c.Pubs)
	for i := range ws {
		w := &publisher{sent: map[uint64]sentBatch{}, stats: Stats{Size: c.Size}}
		var err error
		if w.p, err = pubclient.Dial(ctx, url, pubclient.Options{Authorization: c.Authorization, OnAnswer: w.answer}); err != nil {
			for _, w := range ws[:i] {
				w.p.Close()
			}
			return Stats{}, nil, err
		}
		ws[i] = w
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(ws))
	for i, w := range ws {
		n := c.Msgs / c.Pubs
		if i < c.Msgs%c.Pubs {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.p.Close()
			errs[i] = w.run(ctx, fmt.Sprintf("%s-%d-", run, i), n, c.Batch, c.Size, start)
		}()
	}
	wg.Wait()
	total := Stats{Size: c.Size}
	per := make([]Stats, len(ws))
	for i, w := range ws {
		per[i] = w.stats
		total.Msgs += w.stats.Msgs
		total.Refused += w.stats.Refused
		total.Elapsed = max(total.Elapsed, w.stats.Elapsed)
		total.Latency = append(total.Latency, w.stats.Latency...)
	}
	return total, per, errors.Join(errs...)
}

// publisher is one publish stream of Pub.
type publisher struct {
	p *pubclient.Publisher

	mu    sync.Mutex // guards the fields below, which answer writes
	next  uint64     // the seq of the next batch
	sent  map[uint64]sentBatch
	stats Stats
}

type sentBatch struct {
	at time.Time
	n  int
}

// run publishes n events in batches and waits for their answers.
func (w *publisher) run(ctx context.Context, idPrefix string, n, batch, size int, start time.Time) error {
	evs := make([][]byte, 0, batch)
	pad := strings.Repeat("x", max(0, size-dataOverhead))
	for i := 0; i < n; {
		evs = evs[:0]
		now := time.Now()
		for ; len(evs) < batch && i < n; i++ {
			evs = append(evs, event(idPrefix+strconv.Itoa(i), now, pad))
		}
		w.mu.Lock()
		w.next++
		w.sent[w.next] = sentBatch{at: now, n: len(evs)}
		w.mu.Unlock()
		if _, err := w.p.Publish(ctx, evs); err != nil {
			return err
		}
	}
	err := w.p.Flush(ctx)
	w.mu.Lock()
	w.stats.Elapsed = time.Since(start)
	w.mu.Unlock()
	return err
}

// answer is the publisher's OnAnswer.
func (w *publisher) answer(seq uint64, err error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.sent[seq]
	delete(w.sent, seq)
	if err != nil {
		w.stats.Refused += b.n
		return
	}
	w.stats.Msgs += b.n
	w.stats.Latency = append(w.stats.Latency, now.Sub(b.at))
}

// dataOverhead is the size of an event's data without padding.
var dataOverhead = len(`{"t":1700000000000000000,"p":""}`)

// event is a benchmark event published at t.
func event(id string, t time.Time, pad string) []byte {
	b := make([]byte, 0, 160+len(id)+len(pad))
	b = append(b, `{"specversion":"1.0","id":"`...)
	b = append(b, id...)
	b = append(b, `","source":"/weft/bench","type":"`+EventType+`","datacontenttype":"application/json","data":{"t":`...)
	b = strconv.AppendInt(b, t.UnixNano(), 10)
	b = append(b, `,"p":"`...)
	b = append(b, pad...)
	return append(b, `"}}`...)
}

// published reads the publish time out of a benchmark event's JSON: the
// site passes the publisher's JSON on as it is, so no decode is needed.
func published(ev []byte) (time.Time, bool) {
	i := bytes.Index(ev, []byte(`"data":{"t":`))
	if i < 0 {
		return time.Time{}, false
	}
	rest := ev[i+len(`"data":{"t":`):]
	j := bytes.IndexByte(rest, ',')
	if j < 0 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return time.Unix(0, ns), err == nil
}

// SubConfig configures Sub.
type SubConfig struct {
	Config
	// Subs is how many subscriptions to open.
	Subs int
	// Idle ends the wait once no event came for this long after the
	// first; what is still expected counts as missing.
	Idle time.Duration
	// Ready, if set, is called once every subscription is open.
	Ready func()
}

// Sub subscribes c.Subs times and waits for c.Msgs events on each (for a
// queue, c.Msgs on all together), and returns the total and each
// subscription's figures.
func Sub(ctx context.Context, c SubConfig) (Stats, []Stats, error) {
	if c.Msgs <= 0 || c.Subs <= 0 {
		return Stats{}, nil, errors.New("--msgs and --subs must be above 0")
	}
	u := c.Base + c.Path
	if !strings.HasPrefix(c.Path, "/v1/events/") {
		u += "/events"
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rs := make([]*subscription, c.Subs)
	// A queue's subscriptions stop together, once they have c.Msgs.
	queue := &sharedCount{full: cancel}
	for i := range rs {
		req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
		if err != nil {
			return Stats{}, nil, err
		}
		if c.Authorization != "" {
			req.Header.Set("Authorization", c.Authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return Stats{}, nil, fmt.Errorf("subscribe at %s: %w (is the site running?)", u, err)
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			return Stats{}, nil, fmt.Errorf("subscribe at %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
		}
		rs[i] = &subscription{body: resp.Body}
		if resp.Header.Get("Weft-Kind") == "queue" {
			rs[i].shared = queue
		}
	}
	if c.Ready != nil {
		c.Ready()
	}
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.body.Close()
			r.run(c.Msgs, c.Idle)
		}()
	}
	wg.Wait()
	var total Stats
	var first, last time.Time
	per := make([]Stats, len(rs))
	for i, r := range rs {
		per[i] = r.stats
		total.Msgs += r.stats.Msgs
		total.Size = max(total.Size, r.stats.Size)
		total.Latency = append(total.Latency, r.stats.Latency...)
		if r.stats.Msgs > 0 {
			if first.IsZero() || r.first.Before(first) {
				first = r.first
			}
			last = latest(last, r.last)
		}
	}
	total.Elapsed = last.Sub(first)
	want := c.Msgs * c.Subs
	if queue.used {
		want = c.Msgs
	}
	total.Missing = max(0, want-total.Msgs)
	return total, per, parent.Err()
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// sharedCount is what a queue's subscriptions received together.
type sharedCount struct {
	full func() // ends every subscription
	mu   sync.Mutex
	n    int
	used bool
}

// subscription is one SSE stream of Sub.
type subscription struct {
	body        io.ReadCloser
	shared      *sharedCount // for a queue
	stats       Stats
	first, last time.Time
}

// run reads benchmark events until it has want (a queue: until all
// subscriptions have), or nothing came for idle after the first.
func (r *subscription) run(want int, idle time.Duration) {
	var mu sync.Mutex // guards last against the idle watch
	stop := make(chan struct{})
	defer close(stop)
	if idle > 0 {
		go func() {
			t := time.NewTicker(idle / 4)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				mu.Lock()
				quiet := !r.last.IsZero() && time.Since(r.last) > idle
				mu.Unlock()
				if quiet {
					r.body.Close()
					return
				}
			}
		}()
	}
	if r.shared != nil {
		r.shared.mu.Lock()
		r.shared.used = true
		r.shared.mu.Unlock()
	}
	sc := bufio.NewScanner(r.body)
	sc.Buffer(make([]byte, 64<<10), 2<<20)
	for sc.Scan() {
		line, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok || !bytes.Contains(line, []byte(`"type":"`+EventType+`"`)) {
			continue
		}
		now := time.Now()
		at, ok := published(line)
		mu.Lock()
		if r.first.IsZero() {
			r.first = now
		}
		r.last = now
		mu.Unlock()
		r.stats.Msgs++
		if ok {
			r.stats.Latency = append(r.stats.Latency, now.Sub(at))
		}
		if r.stats.Size == 0 {
			r.stats.Size = dataSize(line)
		}
		if r.done(want) {
			break
		}
	}
	r.stats.Elapsed = r.last.Sub(r.first)
}

// done reports whether this subscription, or a queue's together, has want.
func (r *subscription) done(want int) bool {
	if r.shared == nil {
		return r.stats.Msgs >= want
	}
	r.shared.mu.Lock()
	defer r.shared.mu.Unlock()
	r.shared.n++
	if r.shared.n >= want {
		r.shared.full()
		return true
	}
	return false
}

// dataSize is the size of a benchmark event's data object.
func dataSize(ev []byte) int {
	i := bytes.Index(ev, []byte(`"data":{`))
	if i < 0 {
		return 0
	}
	j := bytes.Index(ev[i:], []byte(`"}`))
	if j < 0 {
		return 0
	}
	return j + 2 - len(`"data":`)
}
