package httpframe

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to every decoder: none may panic, a
// head that decodes must encode back to one that decodes the same, and a
// request target must parse as url.ParseRequestURI parses it.
func FuzzDecode(f *testing.F) {
	req, _ := AppendRequest(nil, &http.Request{Method: "POST", URL: mustURL(f, "/x?y=1"), Host: "h",
		Header: http.Header{"Content-Type": {"text/plain"}}, Trailer: http.Header{"T": nil}, ContentLength: -1}, false)
	resp, _ := AppendResponse(nil, &http.Response{StatusCode: 200, Header: http.Header{"A": {"1", "2"}}, ContentLength: 2})
	end, _ := AppendEnd(nil, FlagKeep, http.Header{"Grpc-Status": {"0"}})
	f.Add(req[FrameHeaderLen:])
	f.Add(resp[FrameHeaderLen:])
	f.Add(end[FrameHeaderLen:])
	f.Add(append(append(AppendFrameHeader(nil, TypeData, 2), 'h', 'i'), end...))
	f.Add([]byte("/a/b?c=d"))
	f.Add([]byte("/a%20b?"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, noBody, err := DecodeRequest(b); err == nil {
			again, err := AppendRequest(nil, r, noBody)
			if err != nil {
				t.Fatalf("re-encoding a decoded request: %v", err)
			}
			r2, noBody2, err := DecodeRequest(again[FrameHeaderLen:])
			if err != nil || noBody2 != noBody || r2.Method != r.Method || r2.URL.RequestURI() != r.URL.RequestURI() ||
				r2.Host != r.Host || !reflect.DeepEqual(r2.Header, r.Header) {
				t.Fatalf("request changed in a round trip: %+v, %v", r2, err)
			}
		}
		if r, err := DecodeResponse(b); err == nil {
			again, err := AppendResponse(nil, r)
			if err != nil {
				t.Fatalf("re-encoding a decoded answer: %v", err)
			}
			if r2, err := DecodeResponse(again[FrameHeaderLen:]); err != nil || r2.StatusCode != r.StatusCode || !reflect.DeepEqual(r2.Header, r.Header) {
				t.Fatalf("answer changed in a round trip: %+v, %v", r2, err)
			}
		}
		if validTarget(b) {
			want, werr := url.ParseRequestURI(string(b))
			if got, gerr := parseTarget(string(b)); (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("target %q: %#v, %v; url.ParseRequestURI %#v, %v", b, got, gerr, want, werr)
			}
		}
		DecodeEnd(b, nil)
		io.Copy(io.Discard, NewBodyReader(bufio.NewReader(bytes.NewReader(b)), nil))
	})
}
