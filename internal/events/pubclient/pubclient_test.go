package pubclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/events"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// site serves one publish stream with script, which gets the accepted
// connection after the hello.
func site(t *testing.T, script func(c *websocket.Conn)) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		if c.Write(r.Context(), websocket.MessageBinary, events.AppendPubHello(nil, 2, 1<<20)) != nil {
			return
		}
		script(c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// TestAnswerOutOfTurn: an acknowledgement of a batch not sent ends the
// stream with ErrBadFrame, and what was unanswered gets that error.
func TestAnswerOutOfTurn(t *testing.T) {
	url := site(t, func(c *websocket.Conn) {
		ctx := context.Background()
		if _, _, err := c.Read(ctx); err != nil {
			return
		}
		c.Write(ctx, websocket.MessageBinary, events.AppendPubAck(nil, 5))
		c.Read(ctx) // until the client goes
	})
	var answered []error
	p, err := Dial(context.Background(), url, Options{OnAnswer: func(_ uint64, err error) { answered = append(answered, err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Publish(context.Background(), [][]byte{[]byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(context.Background()); !errors.Is(err, events.ErrBadFrame) {
		t.Fatalf("Flush = %v, want ErrBadFrame", err)
	}
	p.Close()
	if len(answered) != 1 || !errors.Is(answered[0], events.ErrBadFrame) {
		t.Errorf("answers %v, want one ErrBadFrame", answered)
	}
}

// TestWindow: Publish waits while the site's window is full.
func TestWindow(t *testing.T) {
	release := make(chan struct{})
	url := site(t, func(c *websocket.Conn) {
		ctx := context.Background()
		for range 2 {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
		<-release
		c.Write(ctx, websocket.MessageBinary, events.AppendPubAck(nil, 2))
		c.Read(ctx)
	})
	p, err := Dial(context.Background(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for range 2 {
		if _, err := p.Publish(context.Background(), [][]byte{[]byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Publish(ctx, [][]byte{[]byte(`{}`)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("third Publish with a window of 2: %v, want it to wait (and give up with ctx)", err)
	}
	close(release)
	if seq, err := p.Publish(context.Background(), [][]byte{[]byte(`{}`)}); err != nil || seq != 3 {
		t.Fatalf("Publish after the acknowledgement: %d %v", seq, err)
	}
}

// TestRefusedStream: a site's refusal of the stream itself is its API error.
func TestRefusedStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apitype.WriteError(w, apitype.ErrorDetail{Code: apitype.CodeUnauthorized, Message: "the event API needs a credential"})
	}))
	defer srv.Close()
	_, err := Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), Options{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Code != apitype.CodeUnauthorized {
		t.Fatalf("Dial = %v, want the 401 Unauthorized", err)
	}
}
