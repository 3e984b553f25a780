// Package store is a site's persisted event storage on go.etcd.io/bbolt: the
// outbound log of events published here for persisted topics and queues, the
// inbox of persisted events to deliver at this site, the cursors of
// destinations and subscriptions, the dedup window by CloudEvents source+id,
// and the event configuration.
//
// Why bbolt rather than a hand-written segmented log: an append, its dedup
// entry and the inbox entry commit in one transaction, and a receiver's
// "stored" and "origin offset" advance atomically, which a bare log needs a
// second recovery-sensitive index for. Its copy-on-write B+tree costs write
// amplification, and every commit is an fsync. Writes therefore go through
// one writer at a time (commit.go) that commits every write waiting in one
// group: one fsync for all of them, which is the grouping that keeps
// durability from costing two orders of magnitude. A group of Puts, the
// write on every persisted event's way, is not committed to the tree before
// its answer but appended to a write-ahead log beside it (wal.go), which a
// second goroutine applies to the tree: one write instead of a tree commit
// whose cost grows with the store.
//
// When a commit is durable is the site's choice (Options.Sync): before the
// write returns (SyncAlways), or once the commit is in the kernel's page
// cache, with an fsync every Options.Interval (SyncInterval). Both survive
// the process being killed; only SyncAlways survives a power loss with
// nothing acknowledged lost. spec.md in the events package says why
// SyncAlways is the default.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"weft.dev/weft/internal/events"
	"weft.dev/weft/internal/observe/tracectx"
	"weft.dev/weft/internal/siteid"
)

var (
	bOut     = []byte("out")     // offset -> entry
	bIn      = []byte("in")      // local seq -> entry
	bQueued  = []byte("queued")  // local seq -> queue entry for a consumer here
	bDests   = []byte("dests")   // site ID -> JSON Dest
	bDedup   = []byte("dedup")   // source \0 id \0 destination site ID -> unix nanos stored
	bCursors = []byte("cursors") // subscription name -> inbox seq delivered; QueueCursor(q) -> queued seq handed out
	bConfig  = []byte("config")  // kind/name -> JSON resource
)

// Entry is one stored event.
type Entry struct {
	Kind    byte // events.Topic or events.Queue
	Subject string
	Origin  siteid.ID // the site it was published at
	Time    int64     // unix nanos when stored here, for retention
	// Trace is the context of the span that stored the entry here (the
	// publish or the hop), zero when the event is not traced.
	Trace tracectx.Context
	// Dests are, in the outbound log, the sites the entry is still to be
	// forwarded to; nil in the inbox.
	Dests   []siteid.ID
	Payload []byte
}

// encode lays an entry out as: kind, the trace context when the kind has
// entryTraced set, subject (uvarint length and bytes), origin (16 bytes),
// time (varint), destination count (uvarint) and IDs, payload (the rest).
// An untraced entry is laid out as before traces were stored.
func (e *Entry) encode() []byte {
	b := make([]byte, 0, 1+tracectx.ContextSize+binary.MaxVarintLen64*3+len(e.Subject)+16*(1+len(e.Dests))+len(e.Payload))
	if e.Trace.IsZero() {
		b = append(b, e.Kind)
	} else {
		b = e.Trace.Append(append(b, e.Kind|entryTraced))
	}
	b = binary.AppendUvarint(b, uint64(len(e.Subject)))
	b = append(b, e.Subject...)
	b = append(b, e.Origin[:]...)
	b = binary.AppendVarint(b, e.Time)
	b = binary.AppendUvarint(b, uint64(len(e.Dests)))
	for _, id := range e.Dests {
		b = append(b, id[:]...)
	}
	return append(b, e.Payload...)
}

// entryTraced in the kind byte says a trace context follows it; kinds are
// 't' and 'q', which leave the bit clear.
const entryTraced = 0x80

var errCorrupt = errors.New("store: corrupt entry")

func decodeEntry(b []byte) (Entry, error) {
	if len(b) < 1 {
		return Entry{}, errCorrupt
	}
	e := Entry{Kind: b[0] &^ entryTraced}
	traced := b[0]&entryTraced != 0
	b = b[1:]
	if traced {
		if len(b) < tracectx.ContextSize {
			return Entry{}, errCorrupt
		}
		e.Trace, b = tracectx.ReadContext(b), b[tracectx.ContextSize:]
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return Entry{}, errCorrupt
	}
	e.Subject, b = string(b[k:k+int(n)]), b[k+int(n):]
	if len(b) < 16 {
		return Entry{}, errCorrupt
	}
	e.Origin, b = siteid.ID(b[:16]), b[16:]
	if e.Time, k = binary.Varint(b); k <= 0 {
		return Entry{}, errCorrupt
	}
	b = b[k:]
	if n, k = binary.Uvarint(b); k <= 0 || uint64(len(b)-k)/16 < n {
		return Entry{}, errCorrupt
	}
	b = b[k:]
	if n > 0 {
		e.Dests = make([]siteid.ID, n)
		for i := range e.Dests {
			e.Dests[i], b = siteid.ID(b[:16]), b[16:]
		}
	}
	e.Payload = append([]byte(nil), b...)
	return e, nil
}

// Store is an open store. Its methods are safe for concurrent use.
type Store struct {
	db *bolt.DB
	// The writers' (commit.go): wmu guards the writes queued, whether a
	// caller leads (commits them), and whether the store refuses writes;
	// idle is signalled when the lead ends. stopped is closed once writes
	// are refused and none is left.
	wmu     sync.Mutex
	idle    *sync.Cond
	queue   []write
	leading bool
	closed  bool
	stopped chan struct{}
	// The sync loop's, SyncInterval's (commit.go): dirty says a commit
	// since the last fsync; synced is closed when the loop has made its
	// last fsync; syncErr is the first fsync error, after which writes
	// are refused.
	dirty   atomic.Bool
	synced  chan struct{}
	syncErr atomic.Pointer[error]

	// The write-ahead log's (wal.go). The leader's own: wal's size
	// and the number of the last group written, the buffer it encodes
	// into, the heads of the outbound log, inbox and queued bucket with
	// the pending groups (iOut, iIn, iQueued).
	wal     *os.File
	walSize int64
	walID   uint64
	buf     []byte
	heads   [3]uint64
	// mu guards the rest, shared with applyLoop: the groups logged and
	// not yet in the tree, the dedup, destination and cursor keys they
	// put, the last group applied, and the error that stopped applyLoop.
	// cond is signalled when applied or applyErr changes.
	mu       sync.Mutex
	cond     *sync.Cond
	pending  []*group
	pendKeys map[string]struct{}
	applied  uint64
	applyErr error
	// applyTimer wakes applyLoop applyDelay after a group was logged
	// with none pending; applyNow when a reader or writer waits for it.
	applyTimer *time.Timer
	applyNow   chan struct{}
	applyDone  chan struct{}
}

// Sync says when a write is durable.
type Sync string

const (
	// SyncAlways: a write returns once its commit is fsynced (the
	// writes waiting together share it: commit.go). Nothing it
	// acknowledged is lost even on a power loss.
	SyncAlways Sync = "always"
	// SyncInterval: a write returns once its commit is written to the
	// file (write(2), the kernel's page cache), and the file is fsynced
	// every Options.Interval. A killed process loses nothing written; a
	// power loss or kernel crash loses up to an interval of commits, and
	// can leave the file damaged: bbolt orders its page and meta writes
	// with the fsyncs this mode leaves out.
	SyncInterval Sync = "interval"
)

// DefaultSyncInterval is SyncInterval's fsync period when Options leave it
// zero.
const DefaultSyncInterval = 100 * time.Millisecond

// ParseSync reads a --events-sync value.
func ParseSync(s string) (Sync, error) {
	switch Sync(s) {
	case SyncAlways, SyncInterval:
		return Sync(s), nil
	}
	return "", fmt.Errorf("unknown sync mode %q: use %q (fsync before acknowledging) or %q (write before acknowledging, fsync periodically)", s, SyncAlways, SyncInterval)
}

// Options configure a store; the zero value is SyncAlways.
type Options struct {
	Sync     Sync
	Interval time.Duration // SyncInterval's fsync period; DefaultSyncInterval if zero
}

// Open opens or creates the store at path, with its write-ahead log at path
// + "-wal". A store written before the log existed opens as it is.
func Open(path string, o Options) (*Store, error) {
	if o.Sync == "" {
		o.Sync = SyncAlways
	}
	if _, err := ParseSync(string(o.Sync)); err != nil {
		return nil, err
	}
	if o.Interval <= 0 {
		o.Interval = DefaultSyncInterval
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: o.Sync == SyncInterval})
	if err != nil {
		return nil, fmt.Errorf("event store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bOut, bIn, bQueued, bDests, bDedup, bCursors, bConfig, bWAL} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, stopped: make(chan struct{}), synced: make(chan struct{}),
		pendKeys: map[string]struct{}{}, applyTimer: stoppedTimer(), applyNow: make(chan struct{}, 1), applyDone: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	s.idle = sync.NewCond(&s.wmu)
	if err := s.openWAL(path + "-wal"); err != nil {
		if s.wal != nil {
			s.wal.Close()
		}
		db.Close()
		return nil, fmt.Errorf("event store %s: write-ahead log: %w", path, err)
	}
	s.applied = s.walID
	go s.applyLoop()
	if o.Sync == SyncInterval {
		go s.syncLoop(o.Interval)
	} else {
		close(s.synced)
	}
	return s, nil
}

// Close waits for the writes already accepted, makes them durable, then
// closes the store; later writes fail with ErrClosed.
func (s *Store) Close() error {
	s.stopWrites()
	<-s.applyDone
	<-s.synced
	return errors.Join(s.wal.Close(), s.db.Close())
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func lastKey(b *bolt.Bucket) uint64 {
	k, _ := b.Cursor().Last()
	if k == nil {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// highKey is the highest offset ever used in b, kept in the bucket's
// sequence because Expire may empty it: numbering from the last entry left
// would start again at 1, below the ledger's head and cursors (and the
// subscriptions' inbox positions), where a new entry counts as sent and
// acknowledged already and is never delivered. The last key covers a store
// written before the sequence was kept.
func highKey(b *bolt.Bucket) uint64 { return max(lastKey(b), b.Sequence()) }

// nextKey takes the offset for a new entry of b in a write transaction.
func nextKey(b *bolt.Bucket) (uint64, error) {
	n := highKey(b) + 1
	return n, b.SetSequence(n)
}

// Heads returns the last offsets of the outbound log and of the inbox.
func (s *Store) Heads() (out, in uint64, err error) {
	if err := s.readable(); err != nil {
		return 0, 0, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		out, in = highKey(tx.Bucket(bOut)), highKey(tx.Bucket(bIn))
		return nil
	})
	return out, in, err
}

// Put is one event for Put to store.
type Put struct {
	Entry
	Source, ID string
	// Dests are the destinations the event is for: sites, or for a queue
	// entry the queue's pseudo-site (events.QueueSite).
	Dests []siteid.ID
	// Local is the destination in Dests that this site is: itself for a
	// topic, the queue's pseudo-site when a consumer is here; zero for none.
	// The entry goes into the inbox (a topic's) or the queued bucket (a
	// queue's) for it, unless its source+id was stored for it within the
	// dedup window, and into the outbound log for the other destinations.
	Local siteid.ID
	// Publish says the event is published here: a duplicate for Local is a
	// publisher's retry and is dropped whole.
	Publish bool
	// Overflow says Local has no room (a queue over its high-water mark
	// while a consumer elsewhere has some): a duplicate for Local is still
	// dropped, since it may have been taken here already, but a new entry
	// goes into the outbound log for Local too, to be routed on.
	Overflow bool
	// Set by Put: the inbox or queued seq (0 when not stored there), and
	// the outbound offset and the destinations it is for (0 and nil when
	// none).
	In, Out uint64
	Fwd     []siteid.ID
}

// Put durably stores events, with the writes waiting beside it, in one group
// of the write-ahead log (wal.go): decided against the tree and the groups
// logged before it, then applied to the tree after the callers have their
// answer. Only a destination that is this site deduplicates: a transit site
// that dropped an event it had forwarded before could lose it, when routes
// disagree for a moment and the event comes back around a loop after this
// site's cursor passed it. A destination of the outbound log without a cursor
// gets one just before its entry, and a queue without a queued cursor one just
// before its first entry, in the same group, so that no entry is ever
// orphaned by a crash.
func (s *Store) Put(ps []Put) error {
	for i := range ps {
		if k := len(ps[i].Source) + len(ps[i].ID) + 18; k > bolt.MaxKeySize {
			return fmt.Errorf("event store: source and id of %d bytes, over %d", k, bolt.MaxKeySize)
		}
	}
	return s.write(write{ps: ps})
}

// decide decides one Put against kv: the tree and what is pending before it.
func decide(kv kv, p *Put) error {
	p.In, p.Out, p.Fwd = 0, 0, nil
	if p.Publish && !p.Local.IsZero() && kv.has(iDedup, dedupKey(p.Source, p.ID, p.Local)) {
		return nil
	}
	for _, d := range p.Dests {
		if d != p.Local || p.Local.IsZero() {
			p.Fwd = append(p.Fwd, d)
			continue
		}
		key := dedupKey(p.Source, p.ID, d)
		if kv.has(iDedup, key) {
			continue
		}
		if p.Overflow {
			p.Fwd = append(p.Fwd, d)
			continue
		}
		if err := kv.put(iDedup, key, u64(uint64(p.Time))); err != nil {
			return err
		}
		e := p.Entry
		e.Dests = nil
		bucket := iIn
		if p.Kind == byte(events.Queue) {
			bucket = iQueued
		}
		var err error
		if p.In, err = kv.next(bucket); err != nil {
			return err
		}
		if err := kv.put(bucket, u64(p.In), e.encode()); err != nil {
			return err
		}
		if qc := []byte(QueueCursor(p.Subject)); p.Kind == byte(events.Queue) && !kv.has(iCursors, qc) {
			if err := kv.put(iCursors, qc, u64(p.In-1)); err != nil {
				return err
			}
		}
	}
	return appendOut(kv, p)
}

// appendOnly returns a bucket whose keys only grow (nextKey), with its pages
// filled before they split: bbolt's default leaves every page of such a
// bucket half empty, twice the pages to write and walk.
func appendOnly(tx *bolt.Tx, name []byte) *bolt.Bucket {
	b := tx.Bucket(name)
	b.FillPercent = 0.95
	return b
}

// appendOut appends p to the outbound log for p.Fwd, if any, and sets p.Out.
func appendOut(kv kv, p *Put) error {
	if len(p.Fwd) == 0 {
		return nil
	}
	e := p.Entry
	e.Dests = p.Fwd
	var err error
	if p.Out, err = kv.next(iOut); err != nil {
		return err
	}
	if err := kv.put(iOut, u64(p.Out), e.encode()); err != nil {
		return err
	}
	for _, d := range p.Fwd {
		if kv.has(iDests, d[:]) {
			continue
		}
		nd := Dest{Acked: p.Out - 1}
		if p.Kind == byte(events.Queue) {
			// The pseudo-site's name is only in its patterns: a restart
			// needs them to route it.
			nd.Patterns = []string{events.Interest(events.Queue, p.Subject)}
		}
		v, _ := json.Marshal(nd)
		if err := kv.put(iDests, d[:], v); err != nil {
			return err
		}
	}
	return nil
}

// PassOn moves the queued entry at seq, p, back into the outbound log for
// its queue's pseudo-site and the queue's cursor past it, in one transaction:
// no consumer is left here, so the nearest elsewhere is to have it. Its dedup
// key goes too, so that it is taken again should it come back. It sets p.Out
// and p.Fwd.
func (s *Store) PassOn(p *Put, seq uint64) error {
	return s.update(func(tx *bolt.Tx) error {
		q := events.QueueSite(p.Subject)
		p.In, p.Out, p.Fwd = 0, 0, []siteid.ID{q}
		if err := tx.Bucket(bDedup).Delete(dedupKey(p.Source, p.ID, q)); err != nil {
			return err
		}
		if err := tx.Bucket(bCursors).Put([]byte(QueueCursor(p.Subject)), u64(seq)); err != nil {
			return err
		}
		return appendOut(txKV{tx}, p)
	})
}

func dedupKey(source, id string, dest siteid.ID) []byte {
	k := make([]byte, 0, len(source)+len(id)+18)
	k = append(append(append(k, source...), 0), id...)
	return append(append(k, 0), dest[:]...)
}

// ReadOut calls fn for the outbound entries in (from, to], in order, until fn
// returns false.
func (s *Store) ReadOut(from, to uint64, fn func(off uint64, e Entry) bool) error {
	return s.read(bOut, from, to, fn)
}

// ReadIn calls fn for the inbox entries after from, in order, until fn
// returns false.
func (s *Store) ReadIn(from uint64, fn func(seq uint64, e Entry) bool) error {
	return s.read(bIn, from, ^uint64(0), fn)
}

// ReadQueued calls fn for the queued entries after from, in order, until fn
// returns false.
func (s *Store) ReadQueued(from uint64, fn func(seq uint64, e Entry) bool) error {
	return s.read(bQueued, from, ^uint64(0), fn)
}

// QueueCursor names the cursor of a queue's entries handed to consumers
// here, for Cursor and SetCursor. Subscription names cannot hold a '/'.
func QueueCursor(queue string) string { return "queue/" + queue }

// QueueCursors returns the queues that have queued cursors here.
func (s *Store) QueueCursors() ([]string, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bCursors).Cursor()
		prefix := []byte(QueueCursor(""))
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, string(k[len(prefix):]))
		}
		return nil
	})
	return out, err
}

func (s *Store) read(bucket []byte, from, to uint64, fn func(uint64, Entry) bool) error {
	if err := s.readable(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(u64(from + 1)); k != nil; k, v = c.Next() {
			off := binary.BigEndian.Uint64(k)
			if off > to {
				return nil
			}
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("%s entry %d: %w", bucket, off, err)
			}
			if !fn(off, e) {
				return nil
			}
		}
		return nil
	})
}

// Dest is a destination's stored cursor (ledger.Dest without the in-memory
// part).
type Dest struct {
	Patterns []string `json:"patterns"`
	Acked    uint64   `json:"acked"`
}

// Dests returns the stored destinations.
func (s *Store) Dests() (map[siteid.ID]Dest, error) {
	if err := s.readable(); err != nil {
		return nil, err
	}
	out := map[siteid.ID]Dest{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bDests).ForEach(func(k, v []byte) error {
			var d Dest
			if len(k) != 16 || json.Unmarshal(v, &d) != nil {
				return nil // a damaged cursor only costs a redelivery from scratch
			}
			out[siteid.ID(k)] = d
			return nil
		})
	})
	return out, err
}

// SaveDests stores changed destinations and removes deleted ones.
func (s *Store) SaveDests(save map[siteid.ID]Dest, del []siteid.ID) error {
	if len(save) == 0 && len(del) == 0 {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bDests)
		for id, d := range save {
			v, _ := json.Marshal(d)
			if err := b.Put(id[:], v); err != nil {
				return err
			}
		}
		for _, id := range del {
			if err := b.Delete(id[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Cursor returns a subscription's stored inbox position.
func (s *Store) Cursor(name string) (uint64, bool, error) {
	if err := s.readable(); err != nil {
		return 0, false, err
	}
	var v uint64
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bCursors).Get([]byte(name)); b != nil {
			v, ok = binary.BigEndian.Uint64(b), true
		}
		return nil
	})
	return v, ok, err
}

// SetCursor stores a subscription's inbox position.
func (s *Store) SetCursor(name string, seq uint64) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bCursors).Put([]byte(name), u64(seq)) })
}

// DeleteCursor forgets a subscription's position.
func (s *Store) DeleteCursor(name string) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bCursors).Delete([]byte(name)) })
}

// Expire drops outbound entries up to outUpTo, and inbox entries, dedup
// entries and outbound entries stored before the given time.
func (s *Store) Expire(outUpTo uint64, before time.Time) error {
	cut := before.UnixNano()
	return s.update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bOut, bIn, bQueued} {
			c := tx.Bucket(name).Cursor()
			for k, v := c.First(); k != nil; k, v = c.First() {
				e, err := decodeEntry(v)
				acked := string(name) == string(bOut) && binary.BigEndian.Uint64(k) <= outUpTo
				if err == nil && !acked && e.Time >= cut {
					break
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		c := tx.Bucket(bDedup).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if int64(binary.BigEndian.Uint64(v)) < cut {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// PutConfig stores a configuration object under key.
func (s *Store) PutConfig(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bConfig).Put([]byte(key), b) })
}

// DeleteConfig removes a configuration object; it reports whether it existed.
func (s *Store) DeleteConfig(key string) (bool, error) {
	var found bool
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bConfig)
		found = b.Get([]byte(key)) != nil
		return b.Delete([]byte(key))
	})
	return found, err
}

// Config calls fn for every configuration object.
func (s *Store) Config(fn func(key string, v []byte) error) error {
	if err := s.readable(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bConfig).ForEach(func(k, v []byte) error { return fn(string(k), v) })
	})
}
