package service

import (
	"io"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// countBytes counts the bodies of each request through h as an address's
// bytes "out" (client to service) and its answers' as "in", the directions
// carry counts for a TCP connection, so that an http address has a byte
// rate too. What an upgraded connection (WebSocket) carries after the
// switch is not counted.
func countBytes(bytes *prometheus.CounterVec, h http.Handler) http.Handler {
	out, in := bytes.WithLabelValues("out"), bytes.WithLabelValues("in")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		out.Add(float64(body.n.Load()))
		in.Add(float64(cw.n.Load()))
	})
}

// countingBody counts what is read of a request body; the proxy's
// transport may read it on a goroutine of its own.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// countingWriter counts what is written of an answer's body. Unwrap lets
// http.ResponseController reach the writer's Flush, Hijack and
// EnableFullDuplex.
type countingWriter struct {
	http.ResponseWriter
	n atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
