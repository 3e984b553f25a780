package httpframe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// payload strips a frame's header, checking its type and length.
func payload(t testing.TB, f []byte, want Type) []byte {
	t.Helper()
	typ, n, err := ReadFrameHeader(bufio.NewReader(bytes.NewReader(f)))
	if err != nil || typ != want || n != len(f)-FrameHeaderLen {
		t.Fatalf("frame header: type %d length %d err %v; want type %d length %d", typ, n, err, want, len(f)-FrameHeaderLen)
	}
	return f[FrameHeaderLen:]
}

func TestRequestRoundTrip(t *testing.T) {
	req := &http.Request{
		Method: http.MethodPost, URL: mustURL(t, "http://orders/a/b?x=1&y=%20"), Host: "orders.example:8080",
		Header:        http.Header{"Content-Type": {"application/grpc"}, "X-Multi": {"1", "2"}, "Te": {"trailers"}},
		Trailer:       http.Header{"Grpc-Status": nil},
		ContentLength: -1,
	}
	f, err := AppendRequest(nil, req, false)
	if err != nil {
		t.Fatal(err)
	}
	got, noBody, err := DecodeRequest(payload(t, f, TypeRequest))
	if err != nil {
		t.Fatal(err)
	}
	if noBody || got.Method != req.Method || got.URL.RequestURI() != "/a/b?x=1&y=%20" || got.Host != req.Host ||
		got.ContentLength != -1 || !reflect.DeepEqual(got.Header, req.Header) || !reflect.DeepEqual(got.Trailer, req.Trailer) {
		t.Fatalf("decoded %+v", got)
	}
}

func TestResponseAndEndRoundTrip(t *testing.T) {
	resp := &http.Response{StatusCode: 418, Header: http.Header{"Set-Cookie": {"a=1", "b=2"}}, ContentLength: 3,
		Trailer: http.Header{"X-Sum": nil}}
	f, err := AppendResponse(nil, resp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResponse(payload(t, f, TypeResponse))
	if err != nil {
		t.Fatal(err)
	}
	if got.StatusCode != 418 || got.Status != "418 I'm a teapot" || got.ContentLength != 3 ||
		!reflect.DeepEqual(got.Header, resp.Header) || !reflect.DeepEqual(got.Trailer, resp.Trailer) {
		t.Fatalf("decoded %+v", got)
	}
}

func TestBodyReader(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := NewBodyWriter(bw)
	big := bytes.Repeat([]byte("x"), MaxData+10) // two data frames
	w.Write([]byte("hello "))
	w.Write(big)
	if err := w.End(FlagKeep, http.Header{"X-Sum": {"42"}}); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	br := NewBodyReader(bufio.NewReader(&buf), http.Header{"X-Sum": nil})
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("hello "), big...); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d", len(got), len(want))
	}
	if !br.Done() || br.Flags != FlagKeep || br.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("end: done %v flags %d trailer %v", br.Done(), br.Flags, br.Trailer)
	}
}

// A short body and its end frame come in one Read.
func TestBodyReaderShortBodyOneRead(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	NewBodyWriter(bw).Write([]byte("ok\n"))
	NewBodyWriter(bw).End(0, nil)
	bw.Flush()
	br := NewBodyReader(bufio.NewReader(&buf), nil)
	p := make([]byte, 100)
	n, err := br.Read(p)
	if n != 3 || err != io.EOF {
		t.Fatalf("Read = %d, %v; want 3, EOF", n, err)
	}
}

func TestBodyReaderTruncated(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	NewBodyWriter(bw).Write([]byte("abcdef"))
	bw.Flush()
	for _, cut := range []int{0, 2, FrameHeaderLen + 3, buf.Len()} {
		_, err := io.ReadAll(NewBodyReader(bufio.NewReader(bytes.NewReader(buf.Bytes()[:cut])), nil))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: %v, want unexpected EOF", cut, err)
		}
	}
}

func TestBadFrames(t *testing.T) {
	for name, b := range map[string][]byte{
		"unknown type":    {9, 0, 0, 0},
		"empty data":      {byte(TypeData), 0, 0, 0},
		"long data":       {byte(TypeData), 0x01, 0, 1},
		"head over limit": {byte(TypeRequest), 0x10, 0, 1},
	} {
		if _, _, err := ReadFrameHeader(bufio.NewReader(bytes.NewReader(b))); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
	good, _ := AppendRequest(nil, &http.Request{Method: "GET", URL: mustURL(t, "/"), Host: "h", Header: http.Header{"A": {"b"}}}, true)
	p := good[FrameHeaderLen:]
	for name, b := range map[string][]byte{
		"empty":          {},
		"trailing byte":  append(append([]byte(nil), p...), 0),
		"unknown flag":   append([]byte{0x80}, p[1:]...),
		"bad method":     bytes.Replace(p, []byte("GET"), []byte("G T"), 1),
		"bad target":     bytes.Replace(p, []byte{1, '/'}, []byte{1, ' '}, 1),
		"bad field name": bytes.Replace(p, []byte{1, 'A'}, []byte{1, ':'}, 1),
		"bad value":      bytes.Replace(p, []byte{1, 'b'}, []byte{1, '\n'}, 1),
		"huge count":     append(p[:len(p)-1-5], 0xff, 0xff, 0xff, 0xff, 0x0f),
	} {
		if _, _, err := DecodeRequest(b); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
	if _, err := DecodeResponse([]byte{0, 0x63, 0}); err == nil || !strings.Contains(err.Error(), "status 99") {
		t.Errorf("status 99: %v", err)
	}
}

func TestHeadTooLarge(t *testing.T) {
	req := &http.Request{Method: "GET", URL: mustURL(t, "/"), Header: http.Header{"X": {strings.Repeat("v", MaxHead)}}}
	if _, err := AppendRequest(nil, req, true); !errors.Is(err, ErrFrame) {
		t.Fatalf("a head over the limit: %v", err)
	}
}

// TestParseTargetAsParseRequestURI checks the request target's short path
// against url.ParseRequestURI, whose URL it must equal.
func TestParseTargetAsParseRequestURI(t *testing.T) {
	for _, target := range []string{
		"/", "/a/b", "/a/b?", "/a/b??", "/a?b?", "/?x=1&y=%20", "/a%20b", "/a b", "/a#f", "/a?q#f", "*",
		"//host/x", "/a:b", "/~user/$&+,;=@", "/a!b", "/a'b(c)*", "/a[b]", "/%zz", "/a?%zz", "/\u00e9", "/a;b?c;d",
	} {
		want, werr := url.ParseRequestURI(target)
		got, gerr := parseTarget(target)
		if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %#v, %v; ParseRequestURI %#v, %v", target, got, gerr, want, werr)
		}
	}
}

// TestDecodeAllocations bounds what decoding a typical request and answer
// head allocates: the strings of a head share one copy of it.
func TestDecodeAllocations(t *testing.T) {
	h := http.Header{"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Host": {"127.0.0.1:8080"},
		"X-Forwarded-Proto": {"http"}, "Weft-Proto": {"HTTP/1.1"}, "User-Agent": {""},
		"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	req, _ := AppendRequest(nil, &http.Request{Method: "GET", URL: mustURL(t, "/a/b?c=d"), Host: "web", Header: h}, true)
	resp, _ := AppendResponse(nil, &http.Response{StatusCode: 200, ContentLength: 3,
		Header: http.Header{"Content-Length": {"3"}, "Content-Type": {"text/plain"}, "Date": {"Thu, 03 Dec 2026 12:00:00 GMT"}}})
	// Request, URL, header map (two), the array of first values, one
	// string; 14 with a string per value and url.ParseRequestURI.
	if n := testing.AllocsPerRun(100, func() { DecodeRequest(req[FrameHeaderLen:]) }); n > 6 {
		t.Errorf("DecodeRequest: %v allocations, want at most 6", n)
	}
	// Response, header map (two), the array of first values, one string;
	// 8 with a string per value and a status line made per answer.
	if n := testing.AllocsPerRun(100, func() { DecodeResponse(resp[FrameHeaderLen:]) }); n > 5 {
		t.Errorf("DecodeResponse: %v allocations, want at most 5", n)
	}
}
