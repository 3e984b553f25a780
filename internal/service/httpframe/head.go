package httpframe

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Flags of a request head.
const (
	// FlagNoBody says no data or end frame follows the request head: the
	// request has neither body nor trailers.
	FlagNoBody = 0x01
	// FlagKeep, in an answer's end frame, says the connector site read the
	// request to its end and waits for another request on the stream.
	FlagKeep = 0x01
)

// AppendRequest appends the head frame of req, which must be a client
// request: Method, URL (its RequestURI is sent), Host, Header, Trailer's
// names, ContentLength (-1 unknown). noBody sets FlagNoBody.
func AppendRequest(b []byte, req *http.Request, noBody bool) ([]byte, error) {
	start := len(b)
	b = AppendFrameHeader(b, TypeRequest, 0)
	var flags byte
	if noBody {
		flags |= FlagNoBody
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	host := req.Host
	if host == "" && req.URL != nil {
		host = req.URL.Host
	}
	b = append(b, flags)
	b = appendString(b, method)
	b = appendString(b, req.URL.RequestURI())
	b = appendString(b, host)
	b = binary.AppendVarint(b, req.ContentLength)
	b = appendFields(b, req.Header)
	b = appendNames(b, req.Trailer)
	return finishHead(b, start)
}

// AppendResponse appends the head frame of resp: StatusCode, Header,
// Trailer's names, ContentLength (-1 unknown).
func AppendResponse(b []byte, resp *http.Response) ([]byte, error) {
	start := len(b)
	b = AppendFrameHeader(b, TypeResponse, 0)
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(resp.StatusCode))
	b = binary.AppendVarint(b, resp.ContentLength)
	b = appendFields(b, resp.Header)
	b = appendNames(b, resp.Trailer)
	return finishHead(b, start)
}

// AppendEnd appends an end frame with trailer's fields and flags.
func AppendEnd(b []byte, flags byte, trailer http.Header) ([]byte, error) {
	start := len(b)
	b = AppendFrameHeader(b, TypeEnd, 0)
	b = append(b, flags)
	b = appendFields(b, trailer)
	return finishHead(b, start)
}

// finishHead writes the payload length of the head frame at start.
func finishHead(b []byte, start int) ([]byte, error) {
	n := len(b) - start - FrameHeaderLen
	if n > MaxHead {
		return b[:start], fmt.Errorf("%w: a head of %d bytes, the limit is %d", ErrFrame, n, MaxHead)
	}
	AppendFrameHeader(b[start:start], Type(b[start]), n)
	return b, nil
}

func appendFields(b []byte, h http.Header) []byte {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	b = binary.AppendUvarint(b, uint64(n))
	for k, vs := range h {
		for _, v := range vs {
			b = appendString(b, k)
			b = appendString(b, v)
		}
	}
	return b
}

func appendNames(b []byte, h http.Header) []byte {
	b = binary.AppendUvarint(b, uint64(len(h)))
	for k := range h {
		b = appendString(b, k)
	}
	return b
}

// DecodeRequest decodes a request head's payload into a client request
// for url scheme and host to fill in. Body, context and Trailer values
// are the caller's.
func DecodeRequest(p []byte) (req *http.Request, noBody bool, err error) {
	d := newDecoder(p)
	flags := d.byte("flags")
	method := d.bytes("method")
	target := d.bytes("target")
	host := d.bytes("host")
	cl := d.varint("content length")
	if d.err != nil {
		return nil, false, d.err
	}
	switch {
	case flags&^FlagNoBody != 0:
		return nil, false, fmt.Errorf("%w: unknown request flags %#x", ErrFrame, flags)
	case len(method) == 0 || !validToken(method):
		return nil, false, fmt.Errorf("%w: method %q", ErrFrame, method)
	case !httpguts.ValidHostHeader(string(host)):
		return nil, false, fmt.Errorf("%w: host %q", ErrFrame, host)
	case cl < -1:
		return nil, false, fmt.Errorf("%w: content length %d", ErrFrame, cl)
	}
	if !validTarget(target) {
		return nil, false, fmt.Errorf("%w: request target %q", ErrFrame, target)
	}
	u, uerr := parseTarget(d.str(target))
	if uerr != nil {
		return nil, false, fmt.Errorf("%w: request target %q", ErrFrame, target)
	}
	req = &http.Request{
		Method: d.str(method), URL: u, Host: d.str(host),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		ContentLength: cl,
	}
	req.Header = d.fields()
	req.Trailer = d.names()
	if err := d.end(); err != nil {
		return nil, false, err
	}
	noBody = flags&FlagNoBody != 0
	if noBody && (cl > 0 || len(req.Trailer) > 0) {
		return nil, false, fmt.Errorf("%w: a request without body declares %d bytes or trailers", ErrFrame, cl)
	}
	return req, noBody, nil
}

// DecodeResponse decodes an answer head's payload. Body, Request and
// Trailer values are the caller's.
func DecodeResponse(p []byte) (*http.Response, error) {
	d := newDecoder(p)
	flags := d.byte("flags")
	code := d.uvarint("status")
	cl := d.varint("content length")
	if d.err != nil {
		return nil, d.err
	}
	switch {
	case flags != 0:
		return nil, fmt.Errorf("%w: unknown answer flags %#x", ErrFrame, flags)
	case code < 100 || code > 999:
		return nil, fmt.Errorf("%w: status %d", ErrFrame, code)
	case cl < -1:
		return nil, fmt.Errorf("%w: content length %d", ErrFrame, cl)
	}
	resp := &http.Response{
		Status:     statusLine(int(code)),
		StatusCode: int(code),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		ContentLength: cl,
	}
	resp.Header = d.fields()
	resp.Trailer = d.names()
	if err := d.end(); err != nil {
		return nil, err
	}
	return resp, nil
}

// DecodeEnd decodes an end frame's payload, adding its fields to trailer
// (which may be nil when none are expected: fields then make a new one).
func DecodeEnd(p []byte, trailer http.Header) (flags byte, _ http.Header, err error) {
	d := newDecoder(p)
	flags = d.byte("flags")
	if d.err == nil && flags&^FlagKeep != 0 {
		return 0, nil, fmt.Errorf("%w: unknown end flags %#x", ErrFrame, flags)
	}
	h := d.fields()
	if err := d.end(); err != nil {
		return 0, nil, err
	}
	if len(h) > 0 && trailer == nil {
		trailer = http.Header{}
	}
	for k, vs := range h {
		trailer[k] = vs
	}
	return flags, trailer, nil
}

// statusLines are the Status of the answers with a known reason phrase,
// made once rather than per answer.
var statusLines = func() map[int]string {
	m := map[int]string{}
	for code := 100; code <= 999; code++ {
		if t := http.StatusText(code); t != "" {
			m[code] = strconv.Itoa(code) + " " + t
		}
	}
	return m
}()

func statusLine(code int) string {
	if s, ok := statusLines[code]; ok {
		return s
	}
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// fields decodes a field list; nil on error (recorded in d.err).
func (d *decoder) fields() http.Header {
	n := d.uvarint("field count")
	if d.err != nil {
		return nil
	}
	if n > MaxFields || n > uint64(len(d.b))/2 {
		d.fail(fmt.Sprintf("%d fields", n))
		return nil
	}
	h := make(http.Header, n)
	// One array holds the first value of every name, as in textproto,
	// instead of an allocation per name.
	firsts := make([]string, n)
	for range n {
		k, v := d.bytes("field name"), d.bytes("field value")
		if d.err != nil {
			return nil
		}
		value := d.str(v)
		if !validToken(k) || !httpguts.ValidHeaderFieldValue(value) {
			d.fail(fmt.Sprintf("field %q: %q", k, v))
			return nil
		}
		name := canonical(k)
		if vv, ok := h[name]; ok {
			h[name] = append(vv, value)
			continue
		}
		firsts[0] = value
		h[name], firsts = firsts[:1:1], firsts[1:]
	}
	return h
}

// names decodes a list of declared trailer names, as a Header with the
// names and no values.
func (d *decoder) names() http.Header {
	n := d.uvarint("trailer count")
	if d.err != nil {
		return nil
	}
	if n > MaxFields || n > uint64(len(d.b)) {
		d.fail(fmt.Sprintf("%d trailer names", n))
		return nil
	}
	if n == 0 {
		return nil
	}
	h := make(http.Header, n)
	for range n {
		k := d.bytes("trailer name")
		if d.err != nil {
			return nil
		}
		if !validToken(k) {
			d.fail(fmt.Sprintf("trailer name %q", k))
			return nil
		}
		h[canonical(k)] = nil
	}
	return h
}

// parseTarget is url.ParseRequestURI(target) for a target validTarget
// took. A path of only the bytes url.URL.EscapedPath leaves as they are
// (no escapes) and a query are what ParseRequestURI would make of them,
// without its copies of both; any other target goes to ParseRequestURI.
func parseTarget(target string) (*url.URL, error) {
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !plainPathByte(path[i]) {
			return url.ParseRequestURI(target)
		}
	}
	return &url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}, nil
}

// plainPathByte reports whether url.URL.EscapedPath writes c as it is.
func plainPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~/$&+,:;=@", c) >= 0
}

// canonical is k's canonical header key; the names most requests and
// answers carry come from a table, without allocating.
func canonical(k []byte) string {
	if s, ok := common[string(k)]; ok {
		return s
	}
	return http.CanonicalHeaderKey(string(k))
}

var common = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type",
		"Cookie", "Date", "Etag", "Grpc-Encoding", "Grpc-Accept-Encoding", "Grpc-Message", "Grpc-Status",
		"Grpc-Timeout", "Last-Modified", "Location", "Server", "Set-Cookie", "Te", "Trailer",
		"Traceparent", "Tracestate", "Upgrade", "User-Agent", "Vary", "Weft-Copy", "Weft-Error",
		"Weft-Hedge", "Weft-Overload", "Weft-Proto", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		m[k] = k
	}
	return m
}()

func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

// validTarget takes a request target in origin form ("/path?query") or
// "*", without bytes no request line may carry (spaces, controls).
func validTarget(b []byte) bool {
	if len(b) == 0 || b[0] != '/' && string(b) != "*" {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
