package main

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"weft.dev/weft/bench/internal/benchproc"
)

// backends are the servers the harness runs for the sites: an HTTP server
// per HTTP site and an echo server per TCP site, each answering with its
// site's name so that a client knows where it was served, and the sink of
// the push subscriptions.
type backends struct {
	http    map[string]string // site -> HOST:PORT
	echo    map[string]string
	sinkURL string
	topic   *tally
	queue   *tally
}

func startBackends(cl *benchproc.Cleanups) (*backends, error) {
	b := &backends{http: map[string]string{}, echo: map[string]string{}, topic: newTally(), queue: newTally()}
	for _, n := range httpSites {
		addr, err := serveHTTP(cl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, n+"\n")
		}))
		if err != nil {
			return nil, err
		}
		b.http[n] = addr
	}
	for _, n := range tcpSites {
		addr, err := benchproc.ServeEcho(cl, n)
		if err != nil {
			return nil, err
		}
		b.echo[n] = addr
	}
	mux := http.NewServeMux()
	mux.Handle("POST /topic", b.topic)
	mux.Handle("POST /queue", b.queue)
	addr, err := serveHTTP(cl, mux)
	if err != nil {
		return nil, err
	}
	b.sinkURL = "http://" + addr
	return b, nil
}

// serveHTTP serves h on a free loopback port until cl runs.
func serveHTTP(cl *benchproc.Cleanups, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	cl.Add(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String(), nil
}

// tally counts what a push subscription delivered to the sink, and what
// the publisher had acknowledged: ids published with a 2xx, ids received
// and how often.
type tally struct {
	mu        sync.Mutex
	published map[string]bool
	received  map[string]int
	probes    int
}

func newTally() *tally {
	return &tally{published: map[string]bool{}, received: map[string]int{}}
}

// probePrefix marks the events sent to find out whether the consumer's
// interest has reached the publisher; they are not counted.
const probePrefix = "probe-"

// ServeHTTP takes one event in binary mode (push delivery's), by its ce-id.
func (t *tally) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	id := r.Header.Get("ce-id")
	if id == "" {
		http.Error(w, "no ce-id", http.StatusBadRequest)
		return
	}
	t.mu.Lock()
	if strings.HasPrefix(id, probePrefix) {
		t.probes++
	} else {
		t.received[id]++
	}
	t.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (t *tally) acknowledged(ids []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		t.published[id] = true
	}
}

func (t *tally) probesSeen() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.probes
}

// counts is a tally at one moment.
type counts struct {
	published, delivered, duplicates int
	// stray were received but never acknowledged to the publisher (a
	// publish that failed after storing); not in delivered.
	stray int
	lost  []string // published, not received; sorted
}

func (t *tally) counts() counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := counts{published: len(t.published)}
	for id, n := range t.received {
		c.duplicates += n - 1
		if t.published[id] {
			c.delivered++
		} else {
			c.stray++
		}
	}
	for id := range t.published {
		if t.received[id] == 0 {
			c.lost = append(c.lost, id)
		}
	}
	// Ids are zero-padded, so this is publication order.
	slices.Sort(c.lost)
	return c
}
