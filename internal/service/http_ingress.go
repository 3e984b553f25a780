package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// The client-facing end of an HTTP listener. The handler prepares the
// client's request in place, runs the race (attempt.go) in its own
// goroutine and writes the winning answer straight to the ResponseWriter.
// It does what httputil.ReverseProxy did before it (hop-by-hop headers,
// X-Forwarded-*, trailers, flushing of streamed answers, aborting an
// answer that breaks) without ReverseProxy's copy of the request and its
// header, which with promhttp's wrappers were the largest allocations of
// the ingress under load (bench/README.md, issue 14). An upgrade request
// (WebSocket) still goes through ReverseProxy, which hijacks the client's
// connection and joins it to the tunnel.

// hopHeaders are the hop-by-hop header fields a proxy drops (RFC 9110
// 7.6.1, and the older ones ReverseProxy drops too).
var hopHeaders = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop drops h's hop-by-hop fields and those its Connection
// field names.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, f := range hopHeaders {
		delete(h, f)
	}
}

// ServeHTTP is the listener's handler: it counts each request in the
// listener's metrics around forward.
func (in *ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := in.m.cfg.Clock.Now()
	var body *ingressBody
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		body = &ingressBody{r: r.Body}
		r.Body = body
		defer body.Close()
	}
	enableFullDuplex(w, r)
	aw := &answerWriter{ResponseWriter: w}
	r, span := in.startIngress(r)
	if span != nil {
		defer span.End()
	}
	in.forward(aw, r)
	in.metrics.done(r.Method, aw.status, in.m.cfg.Clock.Since(start), body.count(), aw.n.Load())
	if aw.abort {
		panic(http.ErrAbortHandler)
	}
}

// forward sends r to the address and writes its answer to w.
func (in *ingress) forward(w *answerWriter, r *http.Request) {
	if _, up := r.Header["Upgrade"]; up {
		in.upgrades.ServeHTTP(w, r)
		return
	}
	r, cancel := withGRPCDeadline(r)
	defer cancel()
	in.prepare(r)
	stop := func() {}
	if in.hasLocal() {
		var tr *httptrace.ClientTrace
		tr, stop = informTrace(w)
		r = r.WithContext(httptrace.WithClientTrace(r.Context(), tr))
	}
	resp, err := in.RoundTrip(r)
	stop()
	if err != nil {
		in.fail(w, r, err)
		return
	}
	in.answer(w, r, resp)
}

// hasLocal reports whether this site has http connectors for the address:
// only a local target's transport passes on informational (1xx) answers.
func (in *ingress) hasLocal() bool {
	return len(in.addr.view.Load().instances) > 0
}

// informTrace passes a target's informational answers (103 Early Hints
// and the like) on to the client until stop, which the handler calls
// once the race is over.
func informTrace(w http.ResponseWriter) (_ *httptrace.ClientTrace, stop func()) {
	var (
		mu   sync.Mutex
		done bool
	)
	stop = func() {
		mu.Lock()
		done = true
		mu.Unlock()
	}
	return &httptrace.ClientTrace{
		Got1xxResponse: func(code int, header textproto.MIMEHeader) error {
			mu.Lock()
			defer mu.Unlock()
			if done {
				return nil
			}
			h := w.Header()
			for k, vv := range header {
				h[k] = append(h[k], vv...)
			}
			w.WriteHeader(code)
			clear(h) // WriteHeader keeps the fields of a 1xx answer
			return nil
		},
	}, stop
}

// prepare turns the client's request into the one sent to the address, in
// place: the request is the handler's own, and the server read what it
// needs of the header before the handler ran.
func (in *ingress) prepare(r *http.Request) {
	if r.ContentLength == 0 {
		r.Body = http.NoBody
	}
	r.Close = false
	h := r.Header
	te := httpguts.HeaderValuesContainsToken(h["Te"], "trailers")
	removeHopByHop(h)
	if te {
		h["Te"] = []string{"trailers"}
	}
	delete(h, "Forwarded")
	delete(h, "X-Forwarded-For")
	delete(h, "X-Forwarded-Host")
	delete(h, "X-Forwarded-Proto")
	r.URL.RawQuery = cleanQuery(r.URL.RawQuery)
	in.rewrite(r, r)
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // else a target's transport sends Go's own
	}
}

// rewrite sets what the ingress adds to out, the request sent for the
// client's request r: the address to go to, X-Forwarded-*, the client's
// HTTP version and, unless a span of each attempt sets it, a traceparent.
func (in *ingress) rewrite(out, r *http.Request) {
	out.URL.Scheme, out.URL.Host = "http", in.addr.name
	h := out.Header
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	// The four fields' values share one array (capacity 1 each, so that
	// adding to one does not write over the next).
	vs := []string{"", r.Host, proto, clientProto(r)}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		vs[0] = ip
		h["X-Forwarded-For"] = vs[0:1:1]
	}
	h["X-Forwarded-Host"] = vs[1:2:2]
	h["X-Forwarded-Proto"] = vs[2:3:3]
	h[HeaderProto] = vs[3:4:4]
	if !in.m.cfg.Tracer.On() {
		ensureTraceparent(h)
	}
}

// cleanQuery re-encodes a query that Go's parser would not read back the
// same (semicolons, bad escapes), as ReverseProxy does.
func cleanQuery(s string) string {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ';':
			return reencodeQuery(s)
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return reencodeQuery(s)
			}
			i += 2
		}
	}
	return s
}

func reencodeQuery(s string) string {
	v, _ := url.ParseQuery(s)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// fail answers a request no candidate answered: 503 when none could take
// it, else 502; a gRPC request gets a gRPC status (grpcError).
func (in *ingress) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusBadGateway
	if errors.Is(err, errNoCandidate) {
		code = http.StatusServiceUnavailable
	}
	if r.Context().Err() == nil {
		in.m.cfg.Logger.DebugContext(r.Context(), "http request failed", "address", in.addr.name, "stream", r.RemoteAddr, "err", err)
	}
	if isGRPC(r.Header) {
		grpcError(w, r, err)
		return
	}
	http.Error(w, err.Error(), code)
}

// answer writes resp, the race's answer to r, to the client: its header,
// its body (flushed piece by piece when streamed) and its trailers. An
// answer that breaks while its body is copied aborts the client's
// request, so that the client does not take a cut answer for a whole one.
func (in *ingress) answer(w *answerWriter, r *http.Request, resp *http.Response) {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		in.fail(w, r, fmt.Errorf("site answered 101 %q to a request that asked for no upgrade", resp.Header.Get("Upgrade")))
		return
	}
	removeHopByHop(resp.Header)
	h := w.Header()
	for k, vv := range resp.Header {
		if len(h[k]) == 0 {
			h[k] = vv // the answer is ours: no copy
		} else {
			h[k] = append(h[k], vv...)
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	if err := copyAnswer(w, resp.Body, streamed(resp)); err != nil {
		if !errors.Is(err, context.Canceled) {
			in.m.cfg.Logger.Debug("http answer broke", "address", in.addr.name, "stream", r.RemoteAddr, "err", err)
		}
		w.abort = true
		return
	}
	resp.Body.Close() // reads the trailers in
	if len(resp.Trailer) > 0 {
		// Chunked, so that the trailers can follow: net/http would give a
		// short body a Content-Length instead.
		http.NewResponseController(w).Flush()
	}
	if len(resp.Trailer) == announced {
		for k, vv := range resp.Trailer {
			h[k] = append(h[k], vv...)
		}
		return
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = append(h[http.TrailerPrefix+k], vv...)
	}
}

// streamed reports whether an answer's body is passed on piece by piece
// as it comes: one of unknown length (gRPC among them) or server-sent
// events.
func streamed(resp *http.Response) bool {
	if resp.ContentLength == -1 {
		return true
	}
	const sse = "text/event-stream"
	ct := resp.Header.Get("Content-Type")
	if len(ct) < len(sse) || !strings.EqualFold(ct[:len(sse)], sse) {
		return false // not worth parsing (a map per answer)
	}
	base, _, _ := mime.ParseMediaType(ct)
	return base == "text/event-stream"
}

// copyAnswer copies an answer's body to w, flushing after each piece when
// flush is set.
func copyAnswer(w *answerWriter, body io.Reader, flush bool) error {
	pb := proxyBuffers.get()
	defer proxyBuffers.put(pb)
	buf := *pb
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				if ferr := http.NewResponseController(w.ResponseWriter).Flush(); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// upgradeProxy is the ReverseProxy for the listener's upgrade requests.
func (in *ingress) upgradeProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:      func(r *httputil.ProxyRequest) { in.rewrite(r.Out, r.In) },
		Transport:    in,
		ErrorHandler: in.fail,
		ErrorLog:     in.errorLog,
		BufferPool:   proxyBuffers,
	}
}
