package store

import (
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by writes to a closed store.
var ErrClosed = errors.New("event store is closed")

// maxGroup bounds the writes committed together, so that one transaction's
// dirty pages stay small and a long queue still gets answers in steps;
// maxGroupBytes the payloads of a group's Puts, which keeps a log record
// far below its length field's 4 GiB.
const (
	maxGroup      = 1024
	maxGroupBytes = 64 << 20
)

// write is one caller's part of a group commit: a Put's events (ps), or a
// transaction on the tree (fn).
type write struct {
	fn   func(*bolt.Tx) error
	ps   []Put
	done chan error
}

// size is what a write adds to a log record, roughly: its payloads.
func (w write) size() int {
	n := 0
	for _, p := range w.ps {
		n += len(p.Payload)
	}
	return n
}

// update runs fn in a write transaction shared with whatever other writes are
// waiting, and returns once that transaction is durable. fn may run more than
// once (when another write of its group fails), so it must set its results
// from scratch on every run.
func (s *Store) update(fn func(*bolt.Tx) error) error { return s.write(write{fn: fn}) }

// The store has one writer at a time, the leader: the caller of the write
// that found none. An idle store commits a write at once, in its caller's
// goroutine; writes that arrive during a commit queue and are committed
// together next, by the first of them, to whom the leader passes the lead.
// Unlike bbolt's DB.Batch, nothing waits on a timer for company. The
// leader being a caller, not a goroutine of the store's, spares a write
// two hand-offs between goroutines (to a commit loop and back), which on a
// loaded machine each wait for a CPU: a persisted event makes two Puts in
// series on its way, at the publishing site and at the receiving one.
func (s *Store) write(w write) error {
	if err := s.syncErr.Load(); err != nil {
		return fmt.Errorf("event store: a write to disk failed (%w), so writes acknowledged since the last fsync may be lost; check the disk and restart the site", *err)
	}
	w.done = make(chan error, 1)
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return ErrClosed
	}
	s.queue = append(s.queue, w)
	lead := !s.leading
	s.leading = true
	s.wmu.Unlock()
	if lead {
		s.lead()
	}
	for {
		err := <-w.done
		if err != errLead {
			return err
		}
		s.lead()
	}
}

// errLead, sent to a queued write instead of its answer, makes its caller
// the leader.
var errLead = errors.New("lead")

// lead commits the writes at the head of the queue as one group, then
// passes the lead to the first write still queued, or ends it.
func (s *Store) lead() {
	s.wmu.Lock()
	n, size := 0, 0
	for n < len(s.queue) && n < maxGroup && size < maxGroupBytes {
		size += s.queue[n].size()
		n++
	}
	group := slices.Clone(s.queue[:n])
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	s.wmu.Unlock()
	s.commit(group)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if len(s.queue) > 0 {
		// Its done is empty: it is answered only by a group it is in.
		s.queue[0].done <- errLead
		return
	}
	s.leading = false
	s.idle.Broadcast()
}

// stopWrites refuses writes from now on and waits until those queued
// before are answered.
func (s *Store) stopWrites() {
	s.wmu.Lock()
	s.closed = true
	for s.leading {
		s.idle.Wait()
	}
	s.wmu.Unlock()
	close(s.stopped)
}

// commit commits a group: its transactions in one, its Puts in one log
// record.
func (s *Store) commit(group []write) {
	var puts, txs []write
	for _, w := range group {
		if w.fn != nil {
			txs = append(txs, w)
		} else {
			puts = append(puts, w)
		}
	}
	if len(txs) > 0 {
		s.commitTx(txs)
	}
	if len(puts) > 0 {
		s.logPuts(puts)
	}
}

// commitTx runs a group of transactions in one, on the tree with every
// group logged before applied. A write that fails would leave its partial
// changes in the shared transaction, so the transaction is rolled back, the
// failed write answered with its error, and the others run again.
func (s *Store) commitTx(group []write) {
	if err := s.waitApplied(s.walID); err != nil {
		for _, w := range group {
			w.done <- err
		}
		return
	}
	for len(group) > 0 {
		failed := -1
		var ferr error
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, w := range group {
				if err := w.fn(tx); err != nil {
					failed, ferr = i, err
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			if s.db.NoSync {
				s.dirty.Store(true)
			}
			// A write may have appended to the outbound log
			// (PassOn): the next Put numbers on from there.
			s.loadHeads()
			for _, w := range group {
				w.done <- err
			}
			return
		}
		group[failed].done <- ferr
		group = append(group[:failed], group[failed+1:]...)
	}
}

// logPuts decides a group of Puts, appends it to the log and answers them;
// applyLoop puts it into the tree.
func (s *Store) logPuts(puts []write) {
	answer := func(err error) {
		for _, w := range puts {
			w.done <- err
		}
	}
	if s.walSize > walLimit {
		if err := s.waitApplied(s.walID); err != nil {
			answer(err)
			return
		}
		if err := s.emptyWAL(); err != nil {
			s.fail(err)
			answer(err)
			return
		}
	}
	g := &group{id: s.walID + 1}
	s.mu.Lock()
	tx, err := s.db.Begin(false)
	if err == nil {
		kv := pendKV{s, tx, g}
		for _, w := range puts {
			for i := range w.ps {
				// pendKV's writes cannot fail: Put checked the key sizes.
				decide(kv, &w.ps[i])
			}
		}
		tx.Rollback()
	}
	s.mu.Unlock()
	if err != nil {
		answer(err)
		return
	}
	if len(g.ops) == 0 {
		answer(nil)
		return
	}
	s.buf = g.append(s.buf[:0])
	if _, err := s.wal.WriteAt(s.buf, s.walSize); err != nil {
		s.fail(err)
		answer(err)
		return
	}
	s.walSize += int64(len(s.buf))
	if s.db.NoSync {
		s.dirty.Store(true)
	} else if err := s.wal.Sync(); err != nil {
		s.fail(err)
		answer(err)
		return
	}
	s.walID = g.id
	s.mu.Lock()
	s.pending = append(s.pending, g)
	if len(s.pending) == 1 {
		// The timer, not a wake of applyLoop: its goroutine would take
		// a CPU now, from the events on their way.
		s.applyTimer.Reset(applyDelay)
	}
	s.mu.Unlock()
	answer(nil)
}

// fail refuses every write from now on: what was logged may not be on the
// disk, and the group decided last may not be in the log (the pending state
// has it), so nothing can be answered truthfully any more.
func (s *Store) fail(err error) {
	s.syncErr.CompareAndSwap(nil, &err)
}

// applyDelay is how long applyLoop lets groups gather before it applies
// them, unless someone waits for them: a tree commit costs about the same
// for one event as for many, so events arriving one by one would otherwise
// cost a commit each, CPU taken from the events still on their way.
const applyDelay = 5 * time.Millisecond

// applyLoop puts the logged groups into the tree, all those pending in one
// transaction: applyDelay after the first of them was logged, at once when
// someone waits for them, and until none is left once writes have stopped.
func (s *Store) applyLoop() {
	defer close(s.applyDone)
	defer s.applyTimer.Stop()
	stopped := s.stopped
	for {
		select {
		case <-s.applyTimer.C:
		case <-s.applyNow:
		case <-stopped:
			stopped = nil
		}
		for {
			s.mu.Lock()
			gs := s.pending
			s.mu.Unlock()
			if len(gs) == 0 {
				break
			}
			if err := s.applyGroups(gs); err != nil {
				return
			}
		}
		if stopped == nil {
			return
		}
	}
}

// applyGroups puts gs, the first groups pending, into the tree.
func (s *Store) applyGroups(gs []*group) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, g := range gs {
			if err := apply(tx, g); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && s.db.NoSync {
		s.dirty.Store(true)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.fail(err)
		s.applyErr = err
		s.cond.Broadcast()
		return err
	}
	for _, g := range gs {
		for _, o := range g.ops {
			if o.b != iOut && o.b != iIn && o.b != iQueued {
				delete(s.pendKeys, pendKey(o.b, o.k))
			}
		}
	}
	s.pending = s.pending[len(gs):]
	s.applied = gs[len(gs)-1].id
	s.cond.Broadcast()
	return nil
}

// waitApplied waits until the groups up to id are in the tree, waking
// applyLoop from its applyDelay if they are not.
func (s *Store) waitApplied(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applied < id {
		select {
		case s.applyNow <- struct{}{}:
		default:
		}
	}
	for s.applied < id && s.applyErr == nil {
		s.cond.Wait()
	}
	return s.applyErr
}

// readable waits until the tree has every group logged before the call: a
// read sees what was answered before it.
func (s *Store) readable() error {
	s.mu.Lock()
	var id uint64
	if len(s.pending) > 0 {
		id = s.pending[len(s.pending)-1].id
	}
	s.mu.Unlock()
	return s.waitApplied(id)
}

// syncLoop is SyncInterval's fsync: every interval, if something was
// committed since the last one, and a last time once writes have stopped
// and been applied. It runs beside the writers, who keep writing to the
// page cache meanwhile; fdatasync covers whatever reached the file before it.
func (s *Store) syncLoop(interval time.Duration) {
	defer close(s.synced)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.sync()
		case <-s.applyDone:
			s.sync()
			return
		}
	}
}

func (s *Store) sync() {
	if !s.dirty.Swap(false) {
		return
	}
	err := s.wal.Sync()
	if err == nil {
		err = s.db.Sync()
	}
	if err != nil {
		// Writes acknowledged since the last fsync may be gone from the
		// disk, and a second fsync would not say so (the kernel reports a
		// writeback error once): stop acknowledging.
		s.syncErr.CompareAndSwap(nil, &err)
	}
}
