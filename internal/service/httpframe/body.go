package httpframe

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
)

// BodyReader reads a body's data frames up to its end frame, whose fields
// it adds to Trailer and whose flags it keeps in Flags. It returns io.EOF
// only after a valid end frame; a stream that ends before one gives
// io.ErrUnexpectedEOF. Not safe for concurrent use.
type BodyReader struct {
	r       *bufio.Reader
	left    int // bytes of the current data frame not read yet
	err     error
	Trailer http.Header
	Flags   byte
}

// NewBodyReader reads a body from r; trailer holds the declared trailer
// names (nil for none).
func NewBodyReader(r *bufio.Reader, trailer http.Header) *BodyReader {
	return &BodyReader{r: r, Trailer: trailer}
}

// Done reports whether the end frame was read.
func (b *BodyReader) Done() bool { return b.err == io.EOF }

func (b *BodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left == 0 {
		if b.next(); b.err != nil {
			return 0, b.err
		}
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= n
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return n, err
	}
	if b.left == 0 && b.endBuffered() {
		// The end frame is here already: say so with the last bytes, so
		// that a short body takes one Read.
		b.next()
		return n, b.err
	}
	return n, nil
}

// endBuffered reports whether a whole end frame waits in the buffer.
func (b *BodyReader) endBuffered() bool {
	h, err := b.r.Peek(min(b.r.Buffered(), FrameHeaderLen))
	if err != nil || len(h) < FrameHeaderLen || Type(h[0]) != TypeEnd {
		return false
	}
	return b.r.Buffered() >= FrameHeaderLen+(int(h[1])<<16|int(h[2])<<8|int(h[3]))
}

// next reads the next frame's header: a data frame sets left, an end
// frame ends the body.
func (b *BodyReader) next() {
	t, n, err := ReadFrameHeader(b.r)
	switch {
	case err == io.EOF:
		b.err = io.ErrUnexpectedEOF
	case err != nil:
		b.err = err
	case t == TypeData:
		b.left = n
	case t == TypeEnd:
		var p []byte
		if p, b.err = ReadPayload(b.r, n, nil); b.err == nil {
			b.Flags, b.Trailer, b.err = DecodeEnd(p, b.Trailer)
		}
		if b.err == nil {
			b.err = io.EOF
		}
	default:
		b.err = fmt.Errorf("%w: a frame of type %d inside a body", ErrFrame, t)
	}
}

// BodyWriter writes a body as data frames into w. The caller flushes w.
type BodyWriter struct {
	w *bufio.Writer
}

// NewBodyWriter writes body frames to w.
func NewBodyWriter(w *bufio.Writer) BodyWriter { return BodyWriter{w: w} }

// Write sends p as data frames of at most MaxData bytes.
func (b BodyWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), MaxData)]
		b.w.Write(AppendFrameHeader(b.w.AvailableBuffer(), TypeData, len(c)))
		if _, err := b.w.Write(c); err != nil {
			return n, err
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}

// End writes the end frame with flags and trailer.
func (b BodyWriter) End(flags byte, trailer http.Header) error {
	f, err := AppendEnd(b.w.AvailableBuffer(), flags, trailer)
	if err != nil {
		return err
	}
	_, err = b.w.Write(f)
	return err
}
