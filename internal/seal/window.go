package seal

// windowBits is how far behind the newest stream counter an egress still
// accepts a stream: streams opened at once may arrive out of order.
const windowBits = 2048

// window is the set of stream counters an egress has accepted within the
// last windowBits-64 of the highest, as in WireGuard's (RFC 6479) replay
// filter: a ring of 64-bit words, a word cleared as the highest counter
// enters it. The zero value has seen nothing.
type window struct {
	top  uint64 // highest counter seen + 1; 0 when none
	bits [windowBits / 64]uint64
}

// mark records counter n and reports whether it is new: not seen before
// and not older than the window.
func (w *window) mark(n uint64) bool {
	const words = uint64(windowBits / 64)
	switch {
	case n >= w.top:
		// Words after the one holding top-1 hold counters a whole ring
		// older: clear those the new top passes, at most the whole ring.
		first := (w.top + 63) / 64
		for q := first; q <= n/64 && q < first+words; q++ {
			w.bits[q%words] = 0
		}
		w.top = n + 1
	case w.top-n > windowBits-64:
		return false
	}
	word, bit := &w.bits[(n/64)%words], uint64(1)<<(n%64)
	if *word&bit != 0 {
		return false
	}
	*word |= bit
	return true
}
