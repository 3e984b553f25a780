package service

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/service/httpframe"
	"weft.dev/weft/internal/siteid"
)

// FuzzFramedEgress sends any bytes down a framed HTTP stream to the
// connector site, as a peer site may: it must not panic, and must end the
// stream once the peer has sent its bytes and closed its side, whether they
// were requests to forward to the target (an echo server here) or not.
func FuzzFramedEgress(f *testing.F) {
	w := newWorld(f, "a", "b")
	w.link("a", "b", 1)
	be := startBackend(f, "at-b")
	be.handle(func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	w.connector("b", httpConnector("web", "web", be.addr))
	a, b := w.site("a"), w.site("b")
	request := func(method, target string, body []byte, trailer http.Header) []byte {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			f.Fatal(err)
		}
		r := &http.Request{Method: method, URL: u, Host: "web", Header: http.Header{"A": {"1"}}, ContentLength: int64(len(body))}
		p, err := httpframe.AppendRequest(nil, r, body == nil)
		if err != nil {
			f.Fatal(err)
		}
		if body != nil {
			p = append(httpframe.AppendFrameHeader(p, httpframe.TypeData, len(body)), body...)
			if p, err = httpframe.AppendEnd(p, httpframe.FlagKeep, trailer); err != nil {
				f.Fatal(err)
			}
		}
		return p
	}
	get := request("GET", "/x?y=1", nil, nil)
	post := request("POST", "/echo", []byte("hello"), http.Header{"T": {"v"}})
	f.Add(get)
	f.Add(append(append([]byte{}, get...), post...))
	f.Add(post[:len(post)-3])
	f.Add(request("GET", "/ws", nil, nil))
	f.Add(append(append([]byte{}, post...), 0, 0, 0, 9, 9, 9))
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := forward.Open(ctx, a.fs, forward.NewHeader(forward.KindHTTPFrame, "web", a.fs.ID, []siteid.ID{b.fs.ID}))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		st.SetDeadline(time.Now().Add(10 * time.Second))
		read := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, st)
			read <- err
		}()
		if _, err := io.Copy(st, bytes.NewReader(in)); err == nil {
			st.CloseWrite()
		}
		if err := <-read; errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the connector site did not end the stream after its peer's bytes ended")
		}
	})
}
