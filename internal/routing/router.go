package routing

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"

	"weft.dev/weft/internal/opkey"
	"weft.dev/weft/internal/siteid"
)

// maxLost bounds the records kept after their sites became unreachable.
const maxLost = 4096

// Message is a record to send to a neighbor.
type Message struct {
	To     siteid.ID
	Record Record
}

// Ready is what the router wants done: messages to send, and whether the
// route table changed since the last [Router.Advance].
type Ready struct {
	Messages []Message
	// TableChanged reports that records changed since the last Advance,
	// so [Router.Table] may return different routes or records. It can be
	// set by a change that leaves the routes as they were (a record of an
	// unreachable site, say): computing the table to find out is exactly
	// the work Ready leaves to the caller's Table call.
	TableChanged bool
}

// Router floods site records and computes routes. It is a pure state
// machine: it does no I/O, starts no goroutines and reads no clock; the
// caller feeds it link events and received records and carries out what
// [Router.Ready] returns. A Router is not safe for concurrent use; the
// Tables it returns are.
type Router struct {
	self  siteid.ID
	key   ed25519.PrivateKey // signs local; nil: records go unsigned
	op    *opkey.Signer      // signs local instead of key once set
	local Record             // our current record, also db[self]

	// db holds the latest record of every site that was reachable at the
	// last table computation, plus records received since. It is what we
	// flood and what a new neighbor is sent.
	db map[siteid.ID]*Record
	// lost holds records deleted from db because their site became
	// unreachable. Updates that race each other can make a site look
	// unreachable for a moment (its new link's far end not heard of yet);
	// nobody would send us its record again, so we keep it here, never
	// send it, and restore it if the site turns out to be reachable.
	// NeighborUp empties it: after a partition these records are stale,
	// would resurrect sites that are gone, and the new neighbor sends us
	// everything it has anyway. Bounded by maxLost, oldest loss first out.
	lost      map[siteid.ID]lostRecord
	lostOrder []*Record

	neighbors []neighbor // sessions up, sorted by ID
	upGen     uint64     // counts NeighborUp calls

	outbox []Message
	readyN int // messages handed out by the last Ready

	dirty bool // db changed since table was computed
	table *Table
	// revoked sites' records are refused for good (Revoke).
	revoked map[siteid.ID]struct{}
	// revokedKeys are operational keys whose records are refused for good
	// (RevokeKey).
	revokedKeys map[[ed25519.PublicKeySize]byte]struct{}
	restores    int    // records brought back from lost, for tests
	dbGen       uint64 // bumped on every change of db
	readyGen    uint64 // dbGen at the last Ready
	ackedGen    uint64 // dbGen at the last Advance
}

type lostRecord struct {
	rec *Record
	gen uint64 // upGen when it was lost
}

type neighbor struct {
	id  siteid.ID
	gen uint64 // upGen when its session came up
}

func cmpNeighbor(n neighbor, id siteid.ID) int { return n.id.Compare(id) }

// New returns the router of site self. seqBase must exceed every sequence
// number self used before a restart, as far as the caller can tell (for
// example, wall-clock seconds shifted left by 20 bits); a lower one still
// works, because the router jumps above any older record of its own that
// it hears about, but its first records are then ignored until it does.
// New panics if name is not a valid record name (see [Record.Validate]).
//
// Its records are unsigned, which sites refuse: New is for simulations and
// tests of the routing rules; a site uses [NewSigned].
func New(self siteid.ID, name string, seqBase uint64) *Router {
	return newRouter(self, nil, name, seqBase)
}

// NewSigned returns the router of the site whose identity key is key: its
// ID is [siteid.FromKey] of the public key and every record it originates
// is signed (see [Record.Sign]). The router does not check the records it
// is given: the caller must drop those that fail [Record.Verify] before
// [Router.Step]. See [New] for seqBase and name.
func NewSigned(key ed25519.PrivateKey, name string, seqBase uint64) *Router {
	return newRouter(siteid.FromKey(key.Public().(ed25519.PublicKey)), key, name, seqBase)
}

func newRouter(self siteid.ID, key ed25519.PrivateKey, name string, seqBase uint64) *Router {
	r := &Router{
		self:  self,
		key:   key,
		local: Record{Site: self, Name: name, Seq: seqBase},
		db:    make(map[siteid.ID]*Record),
		lost:  make(map[siteid.ID]lostRecord),
	}
	if err := r.local.Validate(); err != nil {
		panic(fmt.Sprintf("routing: own record of %s: %v", self, err))
	}
	r.originate()
	return r
}

// Self returns the router's own site ID.
func (r *Router) Self() siteid.ID { return r.self }

// Seq returns the sequence number of the record held for site, if any: a
// caller can tell that a record it is about to Step is older than what the
// router has (a replay, or a late copy), which Step drops silently.
func (r *Router) Seq(site siteid.ID) (uint64, bool) {
	if p, ok := r.db[site]; ok {
		return p.Seq, true
	}
	if l, ok := r.lost[site]; ok {
		return l.rec.Seq, true
	}
	return 0, false
}

// Local returns a copy of the record the router currently originates.
func (r *Router) Local() Record { return cloneRecord(&r.local) }

// SetLocal originates a new record of this site with the next sequence
// number and floods it to every neighbor. Links to the same peer are merged
// into the cheapest; links are kept sorted by peer. The slices are copied.
// If the result fails [Record.Validate] (a name, an address or a count
// over its limit: configuration that reached the router unchecked),
// SetLocal returns the error and the router keeps originating its previous
// record, so the site stays reachable with what it had.
func (r *Router) SetLocal(links []Link, connectors []Connector, interests []string) error {
	ls := slices.Clone(links)
	slices.SortStableFunc(ls, func(a, b Link) int {
		return cmp.Or(a.Peer.Compare(b.Peer), cmp.Compare(a.Cost, b.Cost))
	})
	ls = slices.CompactFunc(ls, func(a, b Link) bool { return a.Peer == b.Peer })
	return r.originateWith(func(next *Record) {
		next.Links = ls
		next.Connectors = slices.Clone(connectors)
		next.Interests = slices.Clone(interests)
	})
}

// originateWith announces a new version of the site's record, edited by
// edit, unless the result is invalid: then the site keeps its previous
// record and says why.
func (r *Router) originateWith(edit func(*Record)) error {
	next := r.local
	edit(&next)
	next.Seq = inc(next.Seq)
	if err := next.Validate(); err != nil {
		return fmt.Errorf("routing: own record of %s: %w", r.self, err)
	}
	r.local = next
	r.originate()
	return nil
}

// SetSealKey originates a new record of this site that advertises key, its
// static key for end-to-end stream encryption (see [Record.SealKey]), and
// prev, the key it replaced and still accepts (zero: none).
func (r *Router) SetSealKey(key, prev [SealKeyLen]byte) {
	r.local.SealKey, r.local.PrevSealKey = key, prev
	r.local.Seq = inc(r.local.Seq)
	r.originate()
}

// SetFeatures originates a new record of this site that advertises the
// Feature bits f, unless it already does.
func (r *Router) SetFeatures(f uint64) {
	if f == r.local.Features {
		return
	}
	r.local.Features = f
	r.local.Seq = inc(r.local.Seq)
	r.originate()
}

// SetSigner makes op, an operational key of this site, sign the site's
// records from now on, and originates a record signed by it: the key of a
// router made by [NewSigned] rotates without changing the site ID.
func (r *Router) SetSigner(op *opkey.Signer) error {
	if op.Site() != r.self {
		return fmt.Errorf("routing: operational key of site %s given to site %s", op.Site(), r.self)
	}
	r.op = op
	r.local.Seq = inc(r.local.Seq)
	r.originate()
	return nil
}

// SetPolicy sets the policy section of the site's record (opaque here;
// package policy encodes it) and announces the record when it changed.
func (r *Router) SetPolicy(p []byte) error {
	if bytes.Equal(p, r.local.Policy) {
		return nil
	}
	return r.originateWith(func(next *Record) { next.Policy = slices.Clone(p) })
}

func inc(seq uint64) uint64 {
	// A site that reaches the top stays there; a record can then no longer
	// supersede its predecessor, which a sane seqBase never gets near.
	if seq == ^uint64(0) {
		return seq
	}
	return seq + 1
}

// originate signs r.local, which is valid, installs it as our record and
// floods it.
func (r *Router) originate() {
	switch {
	case r.op != nil:
		r.local.SignOp(r.op)
	case r.key != nil:
		r.local.Sign(r.key)
	}
	rec := r.local
	r.db[r.self] = &rec
	r.changed()
	r.flood(&rec, siteid.ID{})
}

// flood queues rec for every neighbor except the one it came from.
func (r *Router) flood(rec *Record, from siteid.ID) {
	for _, n := range r.neighbors {
		if n.id != from {
			r.outbox = append(r.outbox, Message{To: n.id, Record: *rec})
		}
	}
}

func (r *Router) isNeighbor(id siteid.ID) bool {
	_, ok := slices.BinarySearchFunc(r.neighbors, id, cmpNeighbor)
	return ok
}

// NeighborUp tells the router that a link session to peer came up. It
// queues the whole database for peer, since peer may know nothing yet.
// Calling it again for a peer already up counts as a new session.
func (r *Router) NeighborUp(peer siteid.ID) {
	if peer == r.self || peer.IsZero() {
		panic(fmt.Sprintf("routing: NeighborUp(%s) on site %s", peer, r.self))
	}
	clear(r.lost)
	r.lostOrder = nil
	// Compute first so that records of sites that are gone are not sent.
	r.refresh()
	r.upGen++
	n := neighbor{id: peer, gen: r.upGen}
	if i, ok := slices.BinarySearchFunc(r.neighbors, peer, cmpNeighbor); ok {
		r.neighbors[i] = n
	} else {
		r.neighbors = slices.Insert(r.neighbors, i, n)
	}
	for _, id := range slices.SortedFunc(maps.Keys(r.db), siteid.ID.Compare) {
		r.outbox = append(r.outbox, Message{To: peer, Record: *r.db[id]})
	}
}

// NeighborDown tells the router that the session to peer is gone: queued
// messages for peer are dropped, including those of a Ready not yet
// advanced. The caller should also call SetLocal without the link.
func (r *Router) NeighborDown(peer siteid.ID) {
	if i, ok := slices.BinarySearchFunc(r.neighbors, peer, cmpNeighbor); ok {
		r.neighbors = slices.Delete(r.neighbors, i, i+1)
	}
	kept := r.outbox[:0:0]
	keptReady := 0
	for i, m := range r.outbox {
		if m.To == peer {
			continue
		}
		kept = append(kept, m)
		if i < r.readyN {
			keptReady++
		}
	}
	r.outbox, r.readyN = kept, keptReady
}

// Step handles a record received from neighbor from. Step takes ownership
// of rec's slices: the caller must not change them afterwards. Records that
// fail [Record.Validate] are dropped.
func (r *Router) Step(from siteid.ID, rec Record) {
	if r.Revoked(rec.Site) || r.KeyRevoked(rec.Key) {
		return
	}
	if rec.Site == r.self {
		r.stepSelf(from, &rec)
		return
	}
	cur, ok := r.db[rec.Site]
	if !ok {
		cur = r.lost[rec.Site].rec
	}
	switch {
	case cur == nil || rec.Seq > cur.Seq:
		if rec.Validate() != nil {
			return
		}
		delete(r.lost, rec.Site)
		p := &rec
		r.db[rec.Site] = p
		r.changed()
		r.flood(p, from)
	case rec.Seq < cur.Seq:
		// The sender is behind; bring it up to date rather than wait for
		// the origin's next change.
		if r.isNeighbor(from) {
			r.outbox = append(r.outbox, Message{To: from, Record: *cur})
		}
	case from == rec.Site && !sameRecord(cur, &rec):
		// The origin itself sends different content under a number we
		// already have: it restarted and reused the number. Showing it our
		// copy makes it jump past. Only the origin gets this answer; two
		// other sites holding different copies would bounce them forever.
		if r.isNeighbor(from) {
			r.outbox = append(r.outbox, Message{To: from, Record: *cur})
		}
	}
}

// stepSelf handles a copy of our own record coming back.
func (r *Router) stepSelf(from siteid.ID, rec *Record) {
	switch {
	case rec.Seq > r.local.Seq || rec.Seq == r.local.Seq && !sameRecord(rec, &r.local):
		// A record of ours from before a restart is still around: outbid
		// it, or the network keeps believing it.
		r.local.Seq = inc(rec.Seq)
		r.originate()
	case rec.Seq < r.local.Seq:
		if r.isNeighbor(from) {
			r.outbox = append(r.outbox, Message{To: from, Record: r.local})
		}
	}
}

// Revoke takes site out of the network for good: its record leaves the
// database now, so the next [Router.Table] has no route, candidate or
// interest of it, and [Router.Step] drops its records from then on. The
// caller checks the revocation statement, keeps it across restarts (and
// calls Revoke again after one) and should close links to site. Revoking
// the router's own site does nothing: a revoked site learns it is out from
// the others refusing it.
func (r *Router) Revoke(site siteid.ID) {
	if site == r.self || r.Revoked(site) {
		return
	}
	if r.revoked == nil {
		r.revoked = make(map[siteid.ID]struct{})
	}
	r.revoked[site] = struct{}{}
	_, inDB := r.db[site]
	_, inLost := r.lost[site]
	delete(r.db, site)
	delete(r.lost, site)
	if inDB || inLost {
		r.changed()
	}
}

// RevokeKey refuses, for good, the records that the operational key key
// signs: every record it signed leaves the database now, whatever its
// sequence number, so the next [Router.Table] has no route, candidate or
// interest from it, and [Router.Step] drops such records from then on. A
// site whose record goes is unreachable until its origin signs a new one
// with another key; that record is taken whatever its sequence number, so
// a stolen key that signed a huge one does not lock its site out. The
// router's own record stays: the caller re-signs it (SetSigner) if key is
// its own. The caller checks the revocation statement and keeps it, as for
// [Router.Revoke].
func (r *Router) RevokeKey(key [ed25519.PublicKeySize]byte) {
	if r.KeyRevoked(key) {
		return
	}
	if r.revokedKeys == nil {
		r.revokedKeys = make(map[[ed25519.PublicKeySize]byte]struct{})
	}
	r.revokedKeys[key] = struct{}{}
	for site, p := range r.db {
		if p.Key == key && site != r.self {
			delete(r.db, site)
			r.changed()
		}
	}
	for site, l := range r.lost {
		if l.rec.Key == key {
			delete(r.lost, site)
			r.changed()
		}
	}
}

// KeyRevoked reports whether the operational key key was revoked.
func (r *Router) KeyRevoked(key [ed25519.PublicKeySize]byte) bool {
	_, ok := r.revokedKeys[key]
	return ok
}

// Revoked reports whether site was revoked.
func (r *Router) Revoked(site siteid.ID) bool {
	_, ok := r.revoked[site]
	return ok
}

func (r *Router) changed() {
	r.dirty = true
	r.dbGen++
}

func sameRecord(a, b *Record) bool {
	return a.Site == b.Site && a.Key == b.Key && a.Sig == b.Sig && a.Name == b.Name && a.Seq == b.Seq &&
		slices.Equal(a.Links, b.Links) && slices.Equal(a.Connectors, b.Connectors) &&
		slices.Equal(a.Interests, b.Interests) && a.SealKey == b.SealKey && a.PrevSealKey == b.PrevSealKey && a.Features == b.Features &&
		bytes.Equal(a.Policy, b.Policy) && bytes.Equal(a.Cert, b.Cert) &&
		slices.EqualFunc(a.Extensions, b.Extensions, func(x, y Extension) bool {
			return x.Type == y.Type && bytes.Equal(x.Value, y.Value)
		})
}

// Ready returns the messages to send and whether the table may have
// changed. The caller must send the messages (in order, per neighbor) and
// then call [Router.Advance]; until then Ready returns them again. Ready
// does not compute routes, so it is cheap to call after every Step; a
// caller that sees TableChanged calls [Router.Table], best after a batch
// of Steps since each computation is a full Dijkstra. The returned slices
// belong to the router and must not be modified.
func (r *Router) Ready() Ready {
	r.readyN = len(r.outbox)
	r.readyGen = r.dbGen
	return Ready{Messages: r.outbox[:r.readyN:r.readyN], TableChanged: r.dbGen != r.ackedGen}
}

// Advance acknowledges the last Ready: its messages are forgotten and its
// TableChanged is reset.
func (r *Router) Advance() {
	if rest := r.outbox[r.readyN:]; len(rest) > 0 {
		// A fresh array, since the caller may still read the old one.
		r.outbox = slices.Clone(rest)
	} else {
		r.outbox = nil
	}
	r.readyN = 0
	r.ackedGen = r.readyGen
}

// Table returns the current routes, computing them if records changed.
// Computing also deletes the records of sites that became unreachable.
func (r *Router) Table() *Table {
	r.refresh()
	return r.table
}

// refresh recomputes the table if the database changed, moves records of
// sites that became unreachable out of db and restores those that became
// reachable again.
func (r *Router) refresh() {
	if !r.dirty && r.table != nil {
		return
	}
	recs := make([]*Record, 0, len(r.db)+len(r.lost))
	for _, p := range r.db {
		recs = append(recs, p)
	}
	for _, l := range r.lost {
		recs = append(recs, l.rec)
	}
	slices.SortFunc(recs, func(a, b *Record) int { return a.Site.Compare(b.Site) })
	t, reach := newTable(r.self, recs)
	for i, p := range recs {
		_, inDB := r.db[p.Site]
		switch {
		case reach[i] && !inDB:
			l := r.lost[p.Site]
			delete(r.lost, p.Site)
			r.restores++
			r.db[p.Site] = p
			// Every neighbor up since before the loss was sent the
			// record or sent it to us; later ones were not.
			for _, n := range r.neighbors {
				if n.gen > l.gen {
					r.outbox = append(r.outbox, Message{To: n.id, Record: *p})
				}
			}
		case !reach[i] && inDB:
			delete(r.db, p.Site)
			r.lost[p.Site] = lostRecord{rec: p, gen: r.upGen}
			r.lostOrder = append(r.lostOrder, p)
		}
	}
	r.evictLost()
	r.table = t
	r.dirty = false
}

func (r *Router) evictLost() {
	for len(r.lost) > maxLost {
		p := r.lostOrder[0]
		r.lostOrder = r.lostOrder[1:]
		if r.lost[p.Site].rec == p {
			delete(r.lost, p.Site)
		}
	}
	// lostOrder also holds records since restored or superseded; drop them
	// once they dominate so it stays proportional to lost.
	if len(r.lostOrder) > 2*len(r.lost)+64 {
		kept := r.lostOrder[:0:0]
		for _, p := range r.lostOrder {
			if r.lost[p.Site].rec == p {
				kept = append(kept, p)
			}
		}
		r.lostOrder = kept
	}
}
