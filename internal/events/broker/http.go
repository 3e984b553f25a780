package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/events/cloudevent"
	"weft.dev/weft/internal/events/store"
)

// apiError is the one shape of every event API error, with a stable code.
type apiError struct {
	Status     int    `json:"-"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int    `json:"-"` // seconds; set for 429 and 503
}

// errorTable maps the broker's errors to HTTP answers; anything else is a
// 500.
var errorTable = []struct {
	err  error
	api  apiError
	wait int
}{
	{cloudevent.ErrMalformed, apiError{Status: http.StatusBadRequest, Code: "MalformedEvent"}, 0},
	{cloudevent.ErrTooLarge, apiError{Status: http.StatusBadRequest, Code: "EventTooLarge"}, 0},
	{events.ErrBadSubject, apiError{Status: http.StatusBadRequest, Code: "BadSubject"}, 0},
	{ErrNoConsumer, apiError{Status: http.StatusNotFound, Code: "NoConsumer"}, 0},
	{ErrBusy, apiError{Status: http.StatusTooManyRequests, Code: "Busy"}, 1},
	{ErrBackPressure, apiError{Status: http.StatusServiceUnavailable, Code: "BackPressure"}, 5},
}

func toAPIError(err error) apiError {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			a := e.api
			a.Message, a.RetryAfter = err.Error(), e.wait
			return a
		}
	}
	return apiError{Status: http.StatusInternalServerError, Code: "Internal", Message: err.Error()}
}

func writeError(w http.ResponseWriter, err error) {
	a := toAPIError(err)
	if a.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(a.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.Status)
	json.NewEncoder(w).Encode(map[string]any{"error": a})
}

// Handler is the event API served at the site's event address.
func (b *Broker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/topics/{name}", func(w http.ResponseWriter, r *http.Request) { b.servePublish(w, r, events.Topic) })
	mux.HandleFunc("POST /v1/queues/{name}", func(w http.ResponseWriter, r *http.Request) { b.servePublish(w, r, events.Queue) })
	mux.HandleFunc("GET /v1/topics/{name}/events", func(w http.ResponseWriter, r *http.Request) { b.serveSSE(w, r, events.Topic) })
	mux.HandleFunc("GET /v1/queues/{name}/events", func(w http.ResponseWriter, r *http.Request) { b.serveSSE(w, r, events.Queue) })
	return mux
}

func (b *Broker) servePublish(w http.ResponseWriter, r *http.Request, kind events.Kind) {
	name := r.PathValue("name")
	if err := events.ValidateSubject(name); err != nil {
		writeError(w, err)
		return
	}
	select {
	case b.inflight <- struct{}{}:
		defer func() { <-b.inflight }()
	default:
		writeError(w, ErrBusy)
		return
	}
	evs, err := cloudevent.Decode(r, b.cfg.MaxEventSize)
	if err == nil {
		err = b.Publish(kind, name, evs)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// serveSSE streams events as Server-Sent Events: "id" is the inbox seq of a
// persisted event (a reconnect with Last-Event-ID resumes after it), "data"
// the event in structured JSON. The subscription's interest lasts as long
// as the request.
func (b *Broker) serveSSE(w http.ResponseWriter, r *http.Request, kind events.Kind) {
	pattern := r.PathValue("name")
	if err := events.ValidatePattern(pattern); err != nil {
		writeError(w, err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, errors.New("streaming is not supported by this connection"))
		return
	}
	s := b.subscribe(kind, pattern)
	defer b.unsubscribe(s)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": subscribed\n\n")
	fl.Flush()
	var last uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" && kind == events.Topic {
		last, _ = strconv.ParseUint(v, 10, 64)
		// Registered first, then the backlog: nothing falls in between,
		// and what comes twice is skipped by seq.
		var err error
		b.st.ReadIn(last, func(seq uint64, e store.Entry) bool {
			if events.Kind(e.Kind) == kind && events.Match(pattern, e.Subject) {
				err = writeSSE(w, seq, e.Payload)
			}
			last = seq
			return err == nil
		})
		if err != nil {
			return
		}
		fl.Flush()
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-b.ctx.Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case d := <-s.ch:
			if d.Seq != 0 && d.Seq <= last {
				continue
			}
			if err := writeSSE(w, d.Seq, d.JSON); err != nil {
				return
			}
			for n := len(s.ch); n > 0; n-- {
				d := <-s.ch
				if d.Seq == 0 || d.Seq > last {
					writeSSE(w, d.Seq, d.JSON)
				}
			}
		}
		fl.Flush()
	}
}

func writeSSE(w http.ResponseWriter, seq uint64, data []byte) error {
	var err error
	if seq != 0 {
		_, err = fmt.Fprintf(w, "id: %d\ndata: %s\n\n", seq, data)
	} else {
		_, err = fmt.Fprintf(w, "data: %s\n\n", data)
	}
	return err
}
