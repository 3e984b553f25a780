package forward

import (
	"bytes"
	"io"
	"testing"
)

// onlyReader and onlyWriter hide WriterTo and ReaderFrom.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

func TestCopyConn(t *testing.T) {
	data := bytes.Repeat([]byte("weft "), 200_000) // over bufSize
	for _, tc := range []struct {
		name string
		src  func() io.Reader
		dst  func(*bytes.Buffer) io.Writer
	}{
		{"neither copies by itself: the pooled buffer", func() io.Reader { return onlyReader{bytes.NewReader(data)} }, func(b *bytes.Buffer) io.Writer { return onlyWriter{b} }},
		{"source is a WriterTo", func() io.Reader { return bytes.NewReader(data) }, func(b *bytes.Buffer) io.Writer { return onlyWriter{b} }},
		{"destination is a ReaderFrom", func() io.Reader { return onlyReader{bytes.NewReader(data)} }, func(b *bytes.Buffer) io.Writer { return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			n, err := copyConn(tc.dst(&out), tc.src())
			if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("copied %d of %d bytes, err %v, equal %v", n, len(data), err, bytes.Equal(out.Bytes(), data))
			}
		})
	}
}
