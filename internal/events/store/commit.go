package store

import (
	"errors"

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
			for _, w := range group {
				w.done <- err
			}
			return
		}
		group[failed].done <- ferr
		group = append(group[:failed], group[failed+1:]...)
	}
}
