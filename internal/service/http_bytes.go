package service

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/observe"
)

// listenerMetrics are an HTTP listener's series: requests and their
// durations by status code and method, and the bytes of the bodies of
// requests ("out", client to service, as carry counts a TCP connection's)
// and answers ("in"), so that an http address has a byte rate too. What an
// upgraded connection (WebSocket) carries after the switch is not counted.
//
// The label values (the method as promhttp names it, the code) are
// resolved to their series once each: a lookup by labels per request was
// a visible share of the ingress's CPU.
type listenerMetrics struct {
	requests *prometheus.CounterVec // curried by address
	duration prometheus.ObserverVec
	out, in  prometheus.Counter
	series   sync.Map // seriesKey -> *seriesMetrics
}

type seriesKey struct {
	code   int
	method string
}

type seriesMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newListenerMetrics(m *observe.Metrics, address string) *listenerMetrics {
	by := prometheus.Labels{"address": address}
	bytes := m.AddressBytes.MustCurryWith(by)
	return &listenerMetrics{
		requests: m.HTTPRequests.MustCurryWith(by),
		duration: m.HTTPDuration.MustCurryWith(by),
		out:      bytes.WithLabelValues("out"),
		in:       bytes.WithLabelValues("in"),
	}
}

// done counts a request whose handler returned after took, with the status
// of its answer (0 when none was written: 200, as net/http sends) and the
// bytes of its body and its answer's.
func (lm *listenerMetrics) done(method string, code int, took time.Duration, out, in int64) {
	if code == 0 {
		code = http.StatusOK
	}
	k := seriesKey{code: code, method: metricMethod(method)}
	v, ok := lm.series.Load(k)
	if !ok {
		l := prometheus.Labels{"code": strconv.Itoa(code), "method": k.method}
		v, _ = lm.series.LoadOrStore(k, &seriesMetrics{requests: lm.requests.With(l), duration: lm.duration.With(l)})
	}
	s := v.(*seriesMetrics)
	s.requests.Inc()
	s.duration.Observe(took.Seconds())
	if out > 0 {
		lm.out.Add(float64(out))
	}
	if in > 0 {
		lm.in.Add(float64(in))
	}
}

// metricMethod is a request method as promhttp labels it: the common ones
// in lower case, any other "unknown", so that clients cannot make series
// without bound.
func metricMethod(m string) string {
	switch m {
	case "GET", "get":
		return "get"
	case "PUT", "put":
		return "put"
	case "HEAD", "head":
		return "head"
	case "POST", "post":
		return "post"
	case "DELETE", "delete":
		return "delete"
	case "CONNECT", "connect":
		return "connect"
	case "OPTIONS", "options":
		return "options"
	case "NOTIFY", "notify":
		return "notify"
	case "TRACE", "trace":
		return "trace"
	case "PATCH", "patch":
		return "patch"
	}
	return "unknown"
}

// ingressBody is a client's request body as the ingress sends it on: it
// counts what is read (by the race's copies, on goroutines of their own
// when hedged), and its Close only stops further reads, since the server
// closes the body itself (closing it early would wait for a body not yet
// sent, such as one after 100-continue).
type ingressBody struct {
	r      io.ReadCloser
	n      atomic.Int64
	closed atomic.Bool
}

func (b *ingressBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *ingressBody) Close() error {
	b.closed.Store(true)
	return nil
}

// count is what was read of the body; 0 for no body.
func (b *ingressBody) count() int64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}

// answerWriter records an answer's status and counts its body's bytes for
// the listener's metrics. Unwrap lets http.ResponseController reach the
// writer's Flush, Hijack and EnableFullDuplex.
type answerWriter struct {
	http.ResponseWriter
	status int
	n      atomic.Int64 // an upgrade's copies may write from goroutines of their own
	abort  bool         // the answer broke: abort the client's request
}

func (w *answerWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *answerWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func (w *answerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
