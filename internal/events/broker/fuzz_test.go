package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/siteid"
)

// checkAnswer checks what the event API answered a request from a fuzz
// target: never a server error; a refusal of the broker's own (JSON) has a
// code and a message. ServeMux answers paths it does not route (404, 405,
// redirects for unclean paths) in plain text.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder, ok int) {
	t.Helper()
	switch {
	case w.Code == ok:
	case w.Code >= 500:
		t.Fatalf("server error %d: %s", w.Code, w.Body)
	case w.Code >= 400 && w.Header().Get("Content-Type") == "application/json":
		var body struct{ Error apiError }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code == "" || body.Error.Message == "" {
			t.Fatalf("refusal %d without code and message: %q (%v)", w.Code, w.Body, err)
		}
	case w.Code < 300:
		t.Fatalf("answered %d, neither %d nor a refusal: %s", w.Code, ok, w.Body)
	}
}

// FuzzPublish drives the publish API with any subject, content type,
// binary-mode attributes and body, in binary, structured or batch mode, to
// topics and queues, volatile and persisted: it takes the events (202) or
// refuses them with a 4xx that says why.
func FuzzPublish(f *testing.F) {
	m := newMesh(f, []string{"a"}, nil)
	a := m.site("a")
	a.persisted(f, events.Topic, "p")
	a.persisted(f, events.Queue, "pq")
	// What subscribers get is FuzzDecodeBinary's and FuzzDecode's to check:
	// drain, which decodes it, could only fail the fuzz target from its own
	// goroutine, which ends the fuzzing process.
	a.consume(f, events.Queue, "q", func(delivery) {})
	h := a.b.Handler()
	ev := `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`
	f.Add(uint8(0), "x", "text/plain", "1", "/s", "t", []byte("hello"))
	f.Add(uint8(1), "q", "application/json", "2", "/s", "t", []byte(`{"a":[1,2]}`))
	f.Add(uint8(2), "p", "", "", "", "", []byte(ev))
	f.Add(uint8(4), "p", "", "", "", "", []byte("["+ev+","+ev+"]"))
	f.Add(uint8(7), "pq", "application/cloudevents-batch+json; charset=utf-8", "", "", "", []byte("["+ev+"]"))
	f.Add(uint8(6), "a.b", "application/cloudevents+xml", "", "", "", []byte("<e/>"))
	f.Fuzz(func(t *testing.T, mode uint8, name, ct, id, source, typ string, body []byte) {
		kind := "topics"
		if mode&1 != 0 {
			kind = "queues"
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/"+kind+"/"+url.PathEscape(name), bytes.NewReader(body))
		switch mode >> 1 % 4 {
		case 0: // binary mode
			for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": id, "ce-source": source, "ce-type": typ, "Content-Type": ct} {
				r.Header.Set(k, v)
			}
		case 1:
			r.Header.Set("Content-Type", "application/cloudevents+json")
		case 2:
			r.Header.Set("Content-Type", "application/cloudevents-batch+json")
		default: // whatever the content type says
			r.Header.Set("Content-Type", ct)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		checkAnswer(t, w, http.StatusAccepted)
	})
}

// FuzzSubscribe drives the subscription API with any pattern, Last-Event-ID
// header and lastEventId query, for topics and queues, from a client that
// leaves at once: the stream starts (200, its first line a comment) or is
// refused with a 4xx that says why.
func FuzzSubscribe(f *testing.F) {
	m := newMesh(f, []string{"a"}, nil)
	a := m.site("a")
	a.persisted(f, events.Topic, "p")
	a.publishBatches(f, events.Topic, "p", 3, 3)
	h := a.b.Handler()
	f.Add(false, "p", "1", "")
	f.Add(false, "p.>", "", "0")
	f.Add(true, "jobs.*", "x", "")
	f.Add(false, "a.>.b", "", "18446744073709551615")
	f.Fuzz(func(t *testing.T, queue bool, pattern, lastEventID, query string) {
		kind := "topics"
		if queue {
			kind = "queues"
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the client is gone: the stream ends after its first bytes
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/"+kind+"/"+url.PathEscape(pattern)+"/events?lastEventId="+url.QueryEscape(query), nil)
		r.Header["Last-Event-Id"] = []string{lastEventID} // as sent, unchecked
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		checkAnswer(t, w, http.StatusOK)
		if w.Code == http.StatusOK && !strings.HasPrefix(w.Body.String(), ": subscribed\n\n") {
			t.Fatalf("a stream that starts with %q", w.Body.String())
		}
	})
}

// FuzzServeStream drives the receiving end of event streams from a
// neighbour, tree (volatile) and log (persisted), with any bytes: the broker
// must not panic, must end the stream once its bytes end or at the first
// frame it refuses, answer a log stream only with acknowledgements, and
// open writers only to its neighbours, whatever sites the frames name.
func FuzzServeStream(f *testing.F) {
	m := newMesh(f, []string{"a", "b", "c"}, [][3]int{{1, 2, 1}, {2, 3, 1}})
	a, b, c := m.site("a"), m.site("b"), m.site("c")
	// Subscribers that take whatever comes: a tree stream's events are only
	// checked to be streamable (cloudevent.CheckStreamable), not decoded.
	b.consume(f, events.Topic, ">", func(delivery) {})
	b.consume(f, events.Queue, "q", func(delivery) {})
	ev := []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t"}`)
	tree := events.AppendFrame(nil, &events.Frame{Type: events.FrameEvent, Kind: events.Topic, Subject: "t", Origin: a.id, Paths: [][]siteid.ID{{b.id}, {b.id, c.id}}, Payload: ev})
	tree = events.AppendFrame(tree, &events.Frame{Type: events.FrameEvent, Kind: events.Queue, Subject: "q", Origin: a.id, Paths: [][]siteid.ID{{b.id}}, Payload: ev})
	log := events.AppendFrame(nil, &events.Frame{Type: events.FrameData, Kind: events.Topic, Subject: "t", Origin: a.id, Sites: []siteid.ID{b.id, c.id}, Payload: ev})
	log = events.AppendFrame(log, &events.Frame{Type: events.FrameData, Kind: events.Queue, Subject: "q", Origin: a.id, Sites: []siteid.ID{events.QueueSite("q")}, Payload: ev})
	log = events.AppendFrame(log, &events.Frame{Type: events.FrameMark, Mark: 1})
	f.Add(false, tree)
	f.Add(true, log)
	f.Add(true, tree)
	f.Add(false, []byte{0, 0, 0, 1, 9})
	f.Fuzz(func(t *testing.T, isLog bool, in []byte) {
		tag := TagTree
		if isLog {
			tag = TagLog
		}
		near, far := net.Pipe()
		served := make(chan struct{})
		go func() {
			defer close(served)
			b.b.ServeStream(far, tag, a.id)
		}()
		answered := make(chan error, 1)
		go func() {
			r := bufio.NewReader(near)
			for {
				fr, _, err := events.ReadFrame(r, nil)
				if err != nil {
					answered <- nil
					return
				}
				if fr.Type != events.FrameAck {
					answered <- fmt.Errorf("answered a frame of type %d", fr.Type)
					return
				}
			}
		}()
		go func() {
			near.Write(in) // fails once the broker ends the stream
			near.Close()
		}()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("the stream did not end with its bytes")
		}
		if err := <-answered; err != nil {
			t.Fatal(err)
		}
		b.b.mu.Lock()
		defer b.b.mu.Unlock()
		for id := range b.b.peers {
			if id != a.id && id != c.id {
				t.Fatalf("a writer to %v, not a neighbour", id)
			}
		}
	})
}

// pubMessages splits a fuzz input into publish stream messages: each is a
// byte whose low bit makes it a text message, a 2-byte length and that
// many bytes (what is left, when fewer).
func pubMessages(in []byte) (msgs [][]byte, text []bool) {
	for len(in) >= 3 {
		n := min(int(in[1])<<8|int(in[2]), len(in)-3)
		msgs, text = append(msgs, in[3:3+n]), append(text, in[0]&1 != 0)
		in = in[3+n:]
	}
	return msgs, text
}

// pubInput is the fuzz input of the messages msgs, all binary.
func pubInput(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(append(b, 0, byte(len(m)>>8), byte(len(m))), m...)
	}
	return b
}

// FuzzPublishStream drives a publish stream (a WebSocket at the event API)
// with any messages, to a volatile topic, a persisted topic and a queue
// without consumers: the site's handler must not panic and must end once
// the client has gone, its first message is a hello, and every other one an
// acknowledgement or a refusal, in order, of a batch the client sent.
func FuzzPublishStream(f *testing.F) {
	m := newMesh(f, []string{"a"}, nil)
	a := m.site("a")
	a.persisted(f, events.Topic, "p")
	h := a.b.Handler()
	var panicked atomic.Value
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		defer func() {
			if v := recover(); v != nil {
				panicked.Store(fmt.Sprint(v))
				panic(v)
			}
		}()
		h.ServeHTTP(w, r)
	}))
	f.Cleanup(srv.Close)
	base := "ws" + strings.TrimPrefix(srv.URL, "http")
	ev := func(id string) []byte {
		return []byte(`{"specversion":"1.0","id":"` + id + `","source":"/s","type":"t"}`)
	}
	f.Add(uint8(0), pubInput(events.AppendPubBatch(nil, 1, [][]byte{ev("1"), ev("2")}), events.AppendPubBatch(nil, 2, [][]byte{ev("3")})))
	f.Add(uint8(1), pubInput(events.AppendPubBatch(nil, 1, [][]byte{ev("1")}), events.AppendPubBatch(nil, 2, [][]byte{[]byte(`{"id":"x"}`)}), events.AppendPubBatch(nil, 3, [][]byte{ev("3")})))
	f.Add(uint8(2), pubInput(events.AppendPubBatch(nil, 1, [][]byte{ev("1")})))
	f.Add(uint8(0), pubInput(events.AppendPubBatch(nil, 2, [][]byte{ev("1")})))
	f.Add(uint8(0), append([]byte{1, 0, 2}, "{}"...))
	f.Add(uint8(1), pubInput([]byte{events.PubBatch, 1, 0}))
	f.Fuzz(func(t *testing.T, to uint8, in []byte) {
		path := []string{"/v1/topics/t/publish", "/v1/topics/p/publish", "/v1/queues/q/publish"}[int(to)%3]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		msgs, text := pubMessages(in)
		var sent atomic.Uint64 // the highest batch number sent
		read := make(chan error, 1)
		go func() {
			var done uint64
			for i := 0; ; i++ {
				_, msg, err := c.Read(ctx)
				if err != nil {
					if s := websocket.CloseStatus(err); s != -1 && s != websocket.StatusNormalClosure && s != websocket.StatusPolicyViolation {
						read <- fmt.Errorf("stream closed with %v", err)
						return
					}
					read <- nil
					return
				}
				r, err := events.DecodePubReply(msg)
				switch {
				case err != nil:
					err = fmt.Errorf("message %d: %v", i, err)
				case (i == 0) != (r.Type == events.PubHello):
					err = fmt.Errorf("message %d is of type %d", i, r.Type)
				case i > 0 && (r.Seq <= done || r.Seq > sent.Load()):
					err = fmt.Errorf("answer for batch %d after %d, with %d sent", r.Seq, done, sent.Load())
				}
				if err != nil {
					read <- err
					return
				}
				done = r.Seq
			}
		}()
		for i, msg := range msgs {
			typ := websocket.MessageBinary
			if text[i] {
				typ = websocket.MessageText
			}
			if seq, _, err := events.DecodePubBatch(msg, 1<<30); err == nil && !text[i] {
				sent.Store(max(sent.Load(), seq))
			}
			if c.Write(ctx, typ, msg) != nil {
				break // the site closed the stream
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
		if err := <-read; err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() { handlers.Wait(); close(served) }()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("the publish stream's handler did not end after its client left")
		}
		if v := panicked.Load(); v != nil {
			t.Fatalf("the handler panicked: %v", v)
		}
	})
}
