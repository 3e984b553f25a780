package seal

import "weft.dev/weft/internal/siteid"

// SetKey makes k the static key of the handshakes the initiator starts
// from now on. Sessions made before keep their keys until they rekey, so
// streams on them carry on.
func (in *Initiator) SetKey(k Key) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.cfg.Key = k
}

// SetKey makes k the responder's static key; the one it replaces is still
// answered (an ingress may handshake with it until it has the record that
// advertises k) until the next SetKey or DropPrev. Sessions made before
// are not touched.
func (r *Responder) SetKey(k Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k == r.cfg.Key {
		return
	}
	prev := r.cfg.Key
	r.cfg.Key, r.prev = k, &prev
}

// DropPrev stops answering handshakes made with the static key that the
// last SetKey replaced: its grace is over. Sessions made with it are not
// touched.
func (r *Responder) DropPrev() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prev = nil
}

// prevPeerKey says whether key is the previous static key origin still
// handshakes with.
func (r *Responder) prevPeerKey(origin siteid.ID, key [KeyLen]byte) bool {
	if r.cfg.PrevPeerKey == nil {
		return false
	}
	prev, ok := r.cfg.PrevPeerKey(origin)
	return ok && prev == key
}
