package bridge

import (
	"context"
	"sync"
)

// Ended records, once, why a module's connection ended, for the Receive
// and Send calls that wait on it. Its zero value is ready; modules embed it.
type Ended struct {
	mu  sync.Mutex
	ch  chan struct{}
	err error
}

func (e *Ended) chLocked() chan struct{} {
	if e.ch == nil {
		e.ch = make(chan struct{})
	}
	return e.ch
}

// Done is closed once the connection ended.
func (e *Ended) Done() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.chLocked()
}

// End records err as why the connection ended; only the first call counts.
func (e *Ended) End(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := e.chLocked()
	if e.err == nil {
		e.err = err
		close(ch)
	}
}

// Err is why the connection ended, nil while it has not.
func (e *Ended) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Hand passes m to out for a Receive. It reports false when ctx or the
// connection ended first, with the error Receive is to return: nil for
// ctx, why the connection ended otherwise.
func (e *Ended) Hand(ctx context.Context, out chan<- *Message, m *Message) (bool, error) {
	select {
	case out <- m:
		return true, nil
	case <-ctx.Done():
		return false, nil
	case <-e.Done():
		return false, e.Err()
	}
}
