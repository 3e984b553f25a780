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
// amplification, and every commit is an fsync; DB.Batch coalesces concurrent
// writers into one transaction and one fsync, which is the grouping that keeps
// durability from costing two orders of magnitude.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"weft.dev/weft/internal/routing"
)

var (
	bOut     = []byte("out")     // offset -> entry
	bIn      = []byte("in")      // local seq -> entry
	bDests   = []byte("dests")   // site ID -> JSON Dest
	bOrigins = []byte("origins") // site ID -> last stored offset from it
	bDedup   = []byte("dedup")   // source \0 id -> unix nanos stored
	bCursors = []byte("cursors") // subscription name -> inbox seq delivered
	bConfig  = []byte("config")  // kind/name -> JSON resource
)

// Entry is one stored event.
type Entry struct {
	Kind    byte // events.Topic or events.Queue
	Subject string
	Time    int64 // unix nanos when stored here, for retention
	Payload []byte
}

func (e *Entry) encode() []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64*2+len(e.Subject)+len(e.Payload))
	b = append(b, e.Kind)
	b = binary.AppendUvarint(b, uint64(len(e.Subject)))
	b = append(b, e.Subject...)
	b = binary.AppendVarint(b, e.Time)
	return append(b, e.Payload...)
}

func decodeEntry(b []byte) (Entry, error) {
	if len(b) < 1 {
		return Entry{}, errors.New("store: empty entry")
	}
	e := Entry{Kind: b[0]}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || uint64(len(b)-1-k) < n {
		return Entry{}, errors.New("store: corrupt entry")
	}
	rest := b[1+k:]
	e.Subject = string(rest[:n])
	t, k := binary.Varint(rest[n:])
	if k <= 0 {
		return Entry{}, errors.New("store: corrupt entry time")
	}
	e.Time = t
	e.Payload = append([]byte(nil), rest[int(n)+k:]...)
	return e, nil
}

// Store is an open store. Its methods are safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens or creates the store at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("event store %s: %w", path, err)
	}
	// Batches gather publishers for up to 2 ms: one fsync for all of them.
	db.MaxBatchDelay = 2 * time.Millisecond
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bOut, bIn, bDests, bOrigins, bDedup, bCursors, bConfig} {
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
	return &Store{db: db}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func lastKey(b *bolt.Bucket) uint64 {
	k, _ := b.Cursor().Last()
	if k == nil {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// Heads returns the last offsets of the outbound log and of the inbox.
func (s *Store) Heads() (out, in uint64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		out, in = lastKey(tx.Bucket(bOut)), lastKey(tx.Bucket(bIn))
		return nil
	})
	return out, in, err
}

// Publish is one event for Append.
type Publish struct {
	Entry
	Source, ID string
	// Remote says the entry goes to the outbound log (there are or may be
	// destinations elsewhere) as well as the inbox.
	Remote bool
}

// Appended says where Append put one event; Dup is set, and nothing stored,
// when its source+id was seen within the dedup window.
type Appended struct {
	Out, In uint64
	Dup     bool
}

// Append durably stores events published at this site, dropping those whose
// source+id is in the dedup window. Concurrent calls share one fsync.
func (s *Store) Append(ps []Publish) ([]Appended, error) {
	var res []Appended
	err := s.db.Batch(func(tx *bolt.Tx) error {
		// Batch may run the function again after a failure of another in
		// the batch: start over every time.
		res = make([]Appended, len(ps))
		out, in, dd := tx.Bucket(bOut), tx.Bucket(bIn), tx.Bucket(bDedup)
		for i, p := range ps {
			key := dedupKey(p.Source, p.ID)
			if dd.Get(key) != nil {
				res[i].Dup = true
				continue
			}
			if err := dd.Put(key, u64(uint64(p.Time))); err != nil {
				return err
			}
			v := p.encode()
			if p.Remote {
				res[i].Out = lastKey(out) + 1
				if err := out.Put(u64(res[i].Out), v); err != nil {
					return err
				}
			}
			res[i].In = lastKey(in) + 1
			if err := in.Put(u64(res[i].In), v); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

func dedupKey(source, id string) []byte {
	return append(append([]byte(source), 0), id...)
}

// Received is one entry from another site's log for Receive.
type Received struct {
	Off        uint64
	Entry      Entry
	Source, ID string
	// Mark says nothing is stored: the origin only reports reaching Off.
	Mark bool
	// Seq is set by Receive: the inbox seq, 0 when nothing was stored
	// because the entry was stored before (Off at or below what the origin
	// reached here) or its source+id is in the dedup window.
	Seq uint64
}

// Receive durably stores entries from origin's log, in one transaction.
func (s *Store) Receive(origin routing.SiteID, rs []Received) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		org, dd, in := tx.Bucket(bOrigins), tx.Bucket(bDedup), tx.Bucket(bIn)
		var reached uint64
		if v := org.Get(origin[:]); v != nil {
			reached = binary.BigEndian.Uint64(v)
		}
		for i := range rs {
			r := &rs[i]
			r.Seq = 0
			if r.Off <= reached {
				continue
			}
			reached = r.Off
			if r.Mark {
				continue
			}
			key := dedupKey(r.Source, r.ID)
			if dd.Get(key) != nil {
				continue
			}
			if err := dd.Put(key, u64(uint64(r.Entry.Time))); err != nil {
				return err
			}
			r.Seq = lastKey(in) + 1
			if err := in.Put(u64(r.Seq), r.Entry.encode()); err != nil {
				return err
			}
		}
		return org.Put(origin[:], u64(reached))
	})
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

func (s *Store) read(bucket []byte, from, to uint64, fn func(uint64, Entry) bool) error {
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
func (s *Store) Dests() (map[routing.SiteID]Dest, error) {
	out := map[routing.SiteID]Dest{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bDests).ForEach(func(k, v []byte) error {
			var d Dest
			if len(k) != 16 || json.Unmarshal(v, &d) != nil {
				return nil // a damaged cursor only costs a redelivery from scratch
			}
			out[routing.SiteID(k)] = d
			return nil
		})
	})
	return out, err
}

// SaveDests stores changed destinations and removes deleted ones.
func (s *Store) SaveDests(save map[routing.SiteID]Dest, del []routing.SiteID) error {
	if len(save) == 0 && len(del) == 0 {
		return nil
	}
	return s.db.Batch(func(tx *bolt.Tx) error {
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
	return s.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bCursors).Put([]byte(name), u64(seq)) })
}

// DeleteCursor forgets a subscription's position.
func (s *Store) DeleteCursor(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bCursors).Delete([]byte(name)) })
}

// Expire drops outbound entries up to outUpTo, and inbox entries, dedup
// entries and outbound entries stored before the given time.
func (s *Store) Expire(outUpTo uint64, before time.Time) error {
	cut := before.UnixNano()
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bOut, bIn} {
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
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bConfig).Put([]byte(key), b) })
}

// DeleteConfig removes a configuration object; it reports whether it existed.
func (s *Store) DeleteConfig(key string) (bool, error) {
	var found bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bConfig)
		found = b.Get([]byte(key)) != nil
		return b.Delete([]byte(key))
	})
	return found, err
}

// Config calls fn for every configuration object.
func (s *Store) Config(fn func(key string, v []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bConfig).ForEach(func(k, v []byte) error { return fn(string(k), v) })
	})
}
