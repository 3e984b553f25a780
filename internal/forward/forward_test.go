package forward_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/forward/forwardtest"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/siteid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func id(b byte) siteid.ID { return siteid.ID{15: b} }

func encode(t *testing.T, h *forward.Header) []byte {
	t.Helper()
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStep(t *testing.T) {
	self := id(2)
	path := []siteid.ID{id(2), id(3), id(4)}
	at := func(next uint8) []byte {
		h := forward.NewHeader(forward.KindTCP, "db", id(1), path)
		h.Next = next
		return encode(t, h)
	}
	tests := []struct {
		name   string
		self   siteid.ID
		raw    []byte
		action forward.Action
		next   siteid.ID // Relay
		hdrAt  uint8     // Deliver, Relay: the returned header's Next
		code   uint16    // Refuse
	}{
		{name: "first hop relays", self: self, raw: at(0), action: forward.Relay, next: id(3), hdrAt: 1},
		{name: "middle hop relays", self: id(3), raw: at(1), action: forward.Relay, next: id(4), hdrAt: 2},
		{name: "last segment delivers", self: id(4), raw: at(2), action: forward.Deliver, hdrAt: 2},
		{name: "not the next segment", self: id(3), raw: at(0), code: forward.RejectMisrouted, action: forward.Refuse},
		{name: "garbage", self: self, raw: []byte("garbage"), code: forward.RejectBadHeader, action: forward.Refuse},
		{name: "empty", self: self, raw: nil, code: forward.RejectBadHeader, action: forward.Refuse},
		{name: "trailing byte", self: self, raw: append(at(0), 0), code: forward.RejectBadHeader, action: forward.Refuse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, d := forward.Step(tt.self, tt.raw)
			if d.Action != tt.action {
				t.Fatalf("action %d, want %d (%+v)", d.Action, tt.action, d)
			}
			switch d.Action {
			case forward.Refuse:
				if d.Code != tt.code || d.Reason == "" || h != nil {
					t.Fatalf("refused with %d %q (header %v), want code %d and a reason", d.Code, d.Reason, h, tt.code)
				}
			case forward.Relay:
				if d.Next != tt.next || h.Next != tt.hdrAt || h.Segments[h.Next] != tt.next {
					t.Fatalf("relay to %s, header at %d; want %s at %d", d.Next, h.Next, tt.next, tt.hdrAt)
				}
			case forward.Deliver:
				if h.Next != tt.hdrAt || h.Address != "db" || h.Origin != id(1) {
					t.Fatalf("delivered header %+v", h)
				}
			}
		})
	}
}

// echo serves a stream by confirming it and writing back what it reads,
// closing its side when the reader half-closes.
func echo(st *link.Stream, h *forward.Header) {
	if h.Address != "echo" {
		st.Reject(forward.RejectNoConnector, "no connector for "+h.Address)
		return
	}
	if st.Confirm() != nil {
		return
	}
	io.Copy(st, st)
	st.Close()
}

// line is a-b-c, with c serving "echo".
func line(t *testing.T) (m *forwardtest.Mesh, a, b, c *forwardtest.Site) {
	m = forwardtest.New(t)
	a, b, c = m.Site("a"), m.Site("b"), m.Site("c")
	m.Link(a, b)
	m.Link(b, c)
	c.SetDeliver(echo)
	return m, a, b, c
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestServeRelaysThroughTransit(t *testing.T) {
	_, a, b, c := line(t)
	st, err := a.Open(ctx(t), forward.KindTCP, "echo", b, c)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	msg := strings.Repeat("weft ", 100_000) // over one stream window, so credit flows back through b
	go func() {
		st.Write([]byte(msg))
		st.CloseWrite()
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != msg {
		t.Fatalf("echoed %d bytes, want %d", len(got), len(msg))
	}
}

func rejectCode(t *testing.T, err error) *link.RejectError {
	t.Helper()
	var rej *link.RejectError
	if !errors.As(err, &rej) {
		t.Fatalf("open: %v, want a reject", err)
	}
	return rej
}

func TestServeRefusals(t *testing.T) {
	m, a, b, c := line(t)
	d := m.Site("d") // known to nobody
	tests := []struct {
		name string
		open func() error
		code uint16
		says string
	}{
		{"far end refuses, code comes back through transit", func() error {
			_, err := a.Open(ctx(t), forward.KindTCP, "nothing", b, c)
			return err
		}, forward.RejectNoConnector, "no connector for nothing"},
		{"transit has no link to the next segment", func() error {
			_, err := a.Open(ctx(t), forward.KindTCP, "echo", b, d)
			return err
		}, forward.RejectNoRoute, "no link to site"},
		{"ingress has no link to the first segment", func() error {
			_, err := a.Open(ctx(t), forward.KindTCP, "echo", c)
			return err
		}, forward.RejectNoRoute, "no link to site"},
		{"misrouted", func() error {
			// a sends b a stream whose next segment is c.
			_, err := a.Session(b.ID).Open(ctx(t), encode(t, forward.NewHeader(forward.KindTCP, "echo", a.ID, []siteid.ID{c.ID})))
			return err
		}, forward.RejectMisrouted, "misrouted"},
		{"site serving nothing", func() error {
			_, err := a.Open(ctx(t), forward.KindEvent, "x", b)
			return err
		}, forward.RejectUnknownKind, "serves nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rej := rejectCode(t, tt.open())
			if rej.Code != tt.code || !strings.Contains(rej.Message, tt.says) {
				t.Fatalf("rejected %d %q, want %d saying %q", rej.Code, rej.Message, tt.code, tt.says)
			}
		})
	}
}

// A malformed header closes one stream, never the link: the next stream on
// the same session still goes through.
func TestServeBadHeaderRejectsOnlyThatStream(t *testing.T) {
	_, a, b, c := line(t)
	_, err := a.Session(b.ID).Open(ctx(t), []byte{1, 2, 3})
	if rej := rejectCode(t, err); rej.Code != forward.RejectBadHeader {
		t.Fatalf("rejected %d %q", rej.Code, rej.Message)
	}
	st, err := a.Open(ctx(t), forward.KindTCP, "echo", b, c)
	if err != nil {
		t.Fatalf("the link did not survive a bad header: %v", err)
	}
	st.Close()
}
