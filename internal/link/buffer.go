package link

import (
	"math/bits"
	"sync"
)

// Received DATA lands in pooled buffers of power-of-two size classes from
// 1 KiB to maxRead, so the steady state allocates nothing and a buffer
// never holds less than half its capacity unless it is the tail of a queue
// that small frames are still filling.
const (
	minClassShift = 10
	numClasses    = 19 - minClassShift // up to 256 KiB = maxRead
)

var bufPools [numClasses]sync.Pool

func sizeClass(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// getBuf returns a buffer of length n (n <= maxRead).
func getBuf(n int) *[]byte {
	c := sizeClass(n)
	if p, _ := bufPools[c].Get().(*[]byte); p != nil {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 1<<(c+minClassShift))
	return &b
}

func putBuf(p *[]byte) {
	c := sizeClass(cap(*p))
	if c < numClasses && cap(*p) == 1<<(c+minClassShift) {
		*p = (*p)[:0]
		bufPools[c].Put(p)
	}
}

// chunk is received data (*b)[r:].
type chunk struct {
	b *[]byte
	r int
}

// recvQueue is a FIFO of received chunks. Not safe for concurrent use.
type recvQueue struct {
	q    []chunk
	head int
	n    int // bytes readable
}

// push takes ownership of b, or copies it into the tail when it fits there,
// which keeps small frames from pinning a buffer each.
func (rq *recvQueue) push(b *[]byte) {
	n := len(*b)
	rq.n += n
	if rq.head < len(rq.q) && n <= 16<<10 {
		t := rq.q[len(rq.q)-1].b
		if cap(*t)-len(*t) >= n {
			*t = append(*t, *b...)
			putBuf(b)
			return
		}
	}
	if rq.head > 0 && rq.head == len(rq.q) {
		rq.q = rq.q[:0]
		rq.head = 0
	}
	rq.q = append(rq.q, chunk{b: b})
}

// read copies into p and releases consumed buffers.
func (rq *recvQueue) read(p []byte) int {
	total := 0
	for i := rq.head; i < len(rq.q) && total < len(p); i++ {
		c := rq.q[i]
		total += copy(p[total:], (*c.b)[c.r:])
	}
	rq.discard(total)
	return total
}

// pop detaches the first chunk; the caller owns it and returns it with putBuf.
func (rq *recvQueue) pop() (b *[]byte, data []byte) {
	if rq.head == len(rq.q) {
		return nil, nil
	}
	c := rq.q[rq.head]
	rq.q[rq.head] = chunk{}
	rq.head++
	data = (*c.b)[c.r:]
	rq.n -= len(data)
	rq.compact()
	return c.b, data
}

// peek appends the queued chunks' data to v, as many as v has room for,
// without consuming them.
func (rq *recvQueue) peek(v [][]byte) [][]byte {
	for i := rq.head; i < len(rq.q) && len(v) < cap(v); i++ {
		c := rq.q[i]
		v = append(v, (*c.b)[c.r:])
	}
	return v
}

// discard consumes the first n queued bytes (n <= rq.n), releasing the
// buffers it empties.
func (rq *recvQueue) discard(n int) {
	rq.n -= n
	for n > 0 {
		c := &rq.q[rq.head]
		k := min(n, len(*c.b)-c.r)
		c.r += k
		n -= k
		if c.r == len(*c.b) {
			putBuf(c.b)
			*c = chunk{}
			rq.head++
		}
	}
	rq.compact()
}

func (rq *recvQueue) compact() {
	if rq.head == len(rq.q) {
		rq.q = rq.q[:0]
		rq.head = 0
	} else if rq.head > 32 && rq.head*2 > len(rq.q) {
		k := copy(rq.q, rq.q[rq.head:])
		clear(rq.q[k:])
		rq.q = rq.q[:k]
		rq.head = 0
	}
}

// reset releases every buffer.
func (rq *recvQueue) reset() {
	for i := rq.head; i < len(rq.q); i++ {
		putBuf(rq.q[i].b)
	}
	clear(rq.q)
	rq.q = rq.q[:0]
	rq.head = 0
	rq.n = 0
}
