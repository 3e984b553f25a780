package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// The write-ahead log. A bbolt commit copies the root-to-leaf path of every
// tree it touches (dedup keys, inbox, outbound log, the root) and writes
// them all: after a burst has grown the trees, about 100 µs of CPU per
// commit, at both sites on a persisted event's way, however few events it
// holds. Appending what the commit will change to a file costs one write (and
// one fsync under SyncAlways). So a Put is decided against the tree plus the
// groups logged before it (pendKV), appended to the log as one record,
// answered, and applied to the tree afterwards by applyLoop, many groups per
// transaction. The tree stays what every read and every other write sees
// (they wait for the groups before them to be applied), so only Put changes
// its path. At open, the groups the tree does not have yet (bWAL's "applied")
// are applied again; once everything in the log is in a durable tree, the log
// is emptied.
//
// A record is: length of the body (uint32), CRC-32C of the body (uint32),
// body: group number (uint64), then operations, each a bucket (walBuckets
// index, one byte), key and value (uvarint length and bytes). A record cut
// short or failing its checksum ends the log: it is a write a crash
// interrupted, never answered.

var bWAL = []byte("wal") // "applied" -> the last group number in the tree

// Bucket indices of a logged operation.
const (
	iOut byte = iota
	iIn
	iQueued
	iDests
	iDedup
	iCursors
)

var walBuckets = [...][]byte{iOut: bOut, iIn: bIn, iQueued: bQueued, iDests: bDests, iDedup: bDedup, iCursors: bCursors}

// walLimit is the log's size beyond which it is emptied, once what it holds
// is applied and durable in the tree.
const walLimit = 16 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// op is a logged bucket put.
type op struct {
	b    byte
	k, v []byte
}

// group is one record: the operations of the writes committed together.
type group struct {
	id  uint64
	ops []op
}

func (g *group) append(buf []byte) []byte {
	start := len(buf)
	buf = binary.BigEndian.AppendUint64(append(buf, make([]byte, 8)...), g.id)
	for _, o := range g.ops {
		buf = append(buf, o.b)
		buf = append(binary.AppendUvarint(buf, uint64(len(o.k))), o.k...)
		buf = append(binary.AppendUvarint(buf, uint64(len(o.v))), o.v...)
	}
	body := buf[start+8:]
	binary.BigEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(body, crcTable))
	return buf
}

var errBadGroup = errors.New("malformed write-ahead log record")

func decodeGroup(body []byte) (group, error) {
	if len(body) < 8 {
		return group{}, errBadGroup
	}
	g := group{id: binary.BigEndian.Uint64(body)}
	b := body[8:]
	for len(b) > 0 {
		o := op{b: b[0]}
		if int(o.b) >= len(walBuckets) {
			return group{}, errBadGroup
		}
		var err error
		if o.k, b, err = field(b[1:]); err != nil || len(o.k) == 0 || len(o.k) > bolt.MaxKeySize {
			return group{}, errBadGroup
		}
		if o.v, b, err = field(b); err != nil || len(o.v) > bolt.MaxValueSize {
			return group{}, errBadGroup
		}
		if (o.b == iOut || o.b == iIn || o.b == iQueued) && len(o.k) != 8 {
			return group{}, errBadGroup
		}
		g.ops = append(g.ops, o)
	}
	return g, nil
}

func field(b []byte) (f, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, errBadGroup
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// readWAL returns the groups of a log of size bytes, up to the first record
// cut short, failing its checksum, or numbered not above the one before it
// (left over beyond the end of a log emptied and written again). A record
// with a good checksum that does not decode is an error: not a torn write.
func readWAL(r io.Reader, size int64) ([]group, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var gs []group
	var hdr [8]byte
	for off := int64(0); ; {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return gs, nil
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		if n > size-off-8 {
			return gs, nil
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil || crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
			return gs, nil
		}
		g, err := decodeGroup(body)
		if err != nil {
			return nil, fmt.Errorf("record at offset %d: %w", off, err)
		}
		if len(gs) > 0 && g.id <= gs[len(gs)-1].id {
			return gs, nil
		}
		gs, off = append(gs, g), off+8+n
	}
}

// apply puts g's operations into the tree and notes it applied.
func apply(tx *bolt.Tx, g *group) error {
	for _, o := range g.ops {
		b := tx.Bucket(walBuckets[o.b])
		if o.b == iOut || o.b == iIn || o.b == iQueued {
			b = appendOnly(tx, walBuckets[o.b])
			if k := binary.BigEndian.Uint64(o.k); k > b.Sequence() {
				if err := b.SetSequence(k); err != nil {
					return err
				}
			}
		}
		if err := b.Put(o.k, o.v); err != nil {
			return err
		}
	}
	return tx.Bucket(bWAL).Put([]byte("applied"), u64(g.id))
}

// openWAL opens the log beside the tree, applies the groups the tree lacks,
// and empties it.
func (s *Store) openWAL(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	s.wal = f
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	gs, err := readWAL(f, fi.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bWAL).Get([]byte("applied")); len(v) == 8 {
			s.walID = binary.BigEndian.Uint64(v)
		}
		for i := range gs {
			if gs[i].id <= s.walID {
				continue
			}
			if err := apply(tx, &gs[i]); err != nil {
				return err
			}
			s.walID = gs[i].id
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.loadHeads()
	if err := s.emptyWAL(); err != nil {
		return err
	}
	// The log's name must outlast a crash as much as what it holds.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadHeads reads the heads from the tree, which has every group logged.
func (s *Store) loadHeads() {
	s.db.View(func(tx *bolt.Tx) error {
		for i, b := range [][]byte{bOut, bIn, bQueued} {
			s.heads[i] = highKey(tx.Bucket(b))
		}
		return nil
	})
}

// emptyWAL empties the log, whose groups are all in the tree: first the
// tree is made durable (SyncInterval commits leave that to an fsync).
func (s *Store) emptyWAL() error {
	if s.db.NoSync {
		if err := s.db.Sync(); err != nil {
			return err
		}
	}
	if err := s.wal.Truncate(0); err != nil {
		return err
	}
	s.walSize = 0
	return s.wal.Sync()
}

// kv is what a write decides against: the tree in a write transaction
// (txKV), or the tree as applied so far plus the groups pending (pendKV).
type kv interface {
	has(b byte, k []byte) bool
	put(b byte, k, v []byte) error
	// next is the key for a new entry of the outbound log, the inbox or
	// the queued bucket.
	next(b byte) (uint64, error)
}

type txKV struct{ tx *bolt.Tx }

func (t txKV) has(b byte, k []byte) bool { return t.tx.Bucket(walBuckets[b]).Get(k) != nil }

func (t txKV) put(b byte, k, v []byte) error {
	if b == iOut || b == iIn || b == iQueued {
		return appendOnly(t.tx, walBuckets[b]).Put(k, v)
	}
	return t.tx.Bucket(walBuckets[b]).Put(k, v)
}

func (t txKV) next(b byte) (uint64, error) { return nextKey(t.tx.Bucket(walBuckets[b])) }

// pendKV decides a group to log: tx reads the tree, the store's pending
// keys and heads hold what the groups logged before and not yet applied
// add to it. The leader uses it under s.mu.
type pendKV struct {
	s  *Store
	tx *bolt.Tx
	g  *group
}

func pendKey(b byte, k []byte) string { return string(append([]byte{b}, k...)) }

func (p pendKV) has(b byte, k []byte) bool {
	if _, ok := p.s.pendKeys[pendKey(b, k)]; ok {
		return true
	}
	return p.tx.Bucket(walBuckets[b]).Get(k) != nil
}

func (p pendKV) put(b byte, k, v []byte) error {
	p.g.ops = append(p.g.ops, op{b, k, v})
	switch b {
	case iOut, iIn, iQueued:
		p.s.heads[b] = max(p.s.heads[b], binary.BigEndian.Uint64(k))
	default:
		p.s.pendKeys[pendKey(b, k)] = struct{}{}
	}
	return nil
}

func (p pendKV) next(b byte) (uint64, error) { return p.s.heads[b] + 1, nil }
