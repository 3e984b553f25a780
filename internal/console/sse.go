package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// events streams snapshots as Server-Sent Events: "snapshot" events with
// the JSON snapshot, "failed" with a message when one cannot be taken, and
// "logout" once the session ended, after which the stream ends. The page's
// EventSource reconnects by itself after a network failure.
func (c *Console) events(w http.ResponseWriter, r *http.Request, s session) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	ck, _ := r.Cookie(cookieName) // authed found it
	for {
		if _, ok := c.sessions.get(ck.Value); !ok {
			fmt.Fprint(w, "event: logout\ndata: {}\n\n")
			rc.Flush()
			return
		}
		if err := c.send(w, r, s); err != nil {
			return // the browser went away
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-c.cfg.Done:
			return
		case <-t.C:
		}
	}
}

// send writes one snapshot event, or a failed event saying why there is
// none.
func (c *Console) send(w http.ResponseWriter, r *http.Request, s session) error {
	v, err := c.cfg.Snapshot(r.Context(), s.credential)
	event := "snapshot"
	if err != nil {
		event, v = "failed", map[string]string{"message": err.Error()}
	}
	b, err := json.Marshal(v)
	if err != nil {
		event, b = "failed", []byte(fmt.Sprintf(`{"message":%q}`, err.Error()))
	}
	// JSON from encoding/json has no raw newline, so one data line holds it.
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	return err
}
