package store

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by writes to a closed store.
var ErrClosed = errors.New("event store is closed")

// maxGroup bounds the writes committed together, so that one transaction's
// dirty pages stay small and a long queue still gets answers in steps.
const maxGroup = 1024

// write is one caller's part of a group commit.
type write struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// update runs fn in a write transaction shared with whatever other writes are
// waiting, and returns once that transaction is durable. fn may run more than
// once (when another write of its group fails), so it must set its results
// from scratch on every run.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	if err := s.syncErr.Load(); err != nil {
		return fmt.Errorf("event store: an fsync failed (%w), so writes acknowledged since the one before may be lost; check the disk and restart the site", *err)
	}
	w := write{fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-s.closing:
		return ErrClosed
	}
	return <-w.done
}

// commitLoop is the store's only writer. An idle store commits a write at
// once; writes that arrive during a commit wait for the next one together.
// Unlike bbolt's DB.Batch, nothing waits on a timer for company.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	group := make([]write, 0, maxGroup)
	for {
		select {
		case w := <-s.writes:
			group = append(group[:0], w)
		case <-s.closing:
			return
		}
	gather:
		for len(group) < maxGroup {
			select {
			case w := <-s.writes:
				group = append(group, w)
			default:
				break gather
			}
		}
		s.commit(group)
	}
}

// commit runs a group in one transaction. A write that fails would leave its
// partial changes in the shared transaction, so the transaction is rolled
// back, the failed write answered with its error, and the others run again.
func (s *Store) commit(group []write) {
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
			for _, w := range group {
				w.done <- err
			}
			return
		}
		group[failed].done <- ferr
		group = append(group[:failed], group[failed+1:]...)
	}
}

// syncLoop is SyncInterval's fsync: every interval, if something was
// committed since the last one, and a last time once the commit loop has
// stopped. It runs beside the commit loop, which keeps writing to the page
// cache meanwhile; fdatasync covers whatever reached the file before it.
func (s *Store) syncLoop(interval time.Duration) {
	defer close(s.synced)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.sync()
		case <-s.stopped:
			s.sync()
			return
		}
	}
}

func (s *Store) sync() {
	if !s.dirty.Swap(false) {
		return
	}
	if err := s.db.Sync(); err != nil {
		// Writes acknowledged since the last fsync may be gone from the
		// disk, and a second fsync would not say so (the kernel reports a
		// writeback error once): stop acknowledging.
		s.syncErr.CompareAndSwap(nil, &err)
	}
}
