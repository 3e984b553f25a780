package seal_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/forward/forwardtest"
	"weft.dev/weft/internal/link"
	"weft.dev/weft/internal/seal"
	"weft.dev/weft/internal/siteid"
)

// An unsealed stream is served only when the link it came on proved its
// peer to be the stream's origin: else, however it came (relayed by a
// transit site, made up by the peer, or before the link proved anyone),
// it is refused with RejectSeal and a message that says so, and counted.
func TestAcceptDirect(t *testing.T) {
	m := forwardtest.New(t)
	a, c, x := m.Site("a"), m.Site("c"), m.Site("x")
	m.Link(a, c)
	key, err := seal.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan string, 10)
	resp := seal.NewResponder(seal.Config{Self: c.ID, Key: key, Refused: func(r string) { refused <- r }})
	linkPeer := make(chan siteid.ID, 1)
	c.SetDeliver(func(st *link.Stream, h *forward.Header) {
		if resp.AcceptDirect(st, h, <-linkPeer) != nil || st.Confirm() != nil {
			return
		}
		io.Copy(st, st)
		st.CloseWrite()
		st.Close()
	})
	for _, tc := range []struct {
		name   string
		peer   siteid.ID
		refuse string // in the reject's message; empty: served
	}{
		{"from the link's peer", a.ID, ""},
		{"from a transit site", x.ID, "arrived unsealed from site " + x.ID.String()},
		{"before the link proved its peer", siteid.ID{}, "whose peer is not proven yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			linkPeer <- tc.peer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := a.Open(ctx, forward.KindTCP, "echo", c)
			if tc.refuse == "" {
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					io.WriteString(st, "direct")
					st.CloseWrite()
				}()
				got, err := io.ReadAll(st)
				st.Close()
				if err != nil || string(got) != "direct" {
					t.Fatalf("echo: %q, %v", got, err)
				}
				return
			}
			var rej *link.RejectError
			if !errors.As(err, &rej) || rej.Code != forward.RejectSeal || !strings.Contains(rej.Message, tc.refuse) {
				t.Fatalf("open: %v, want RejectSeal saying %q", err, tc.refuse)
			}
			if r := <-refused; r != "unsealed-not-peer" {
				t.Fatalf("refusal counted as %q", r)
			}
		})
	}
}
