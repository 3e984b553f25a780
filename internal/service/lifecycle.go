package service

import (
	"context"
	"net"
	"sync"

	"weft.dev/weft/internal/workers"
)

// lifecycle is what Manager.Close ends: the context that requests and
// connects derive from, the goroutines the manager starts and the
// connections it joins. Once closing it starts and holds nothing more, so
// that Close can wait for a finite set of goroutines.
type lifecycle struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// workers run what goroutine is given: mostly each client
	// connection's carry, which calls deep (balancer, link, seal) and so
	// would grow a new goroutine's stack by copying (package workers).
	workers *workers.Pool

	mu      sync.Mutex // guards the fields below
	closing bool
	conns   map[net.Conn]struct{}
}

func newLifecycle() *lifecycle {
	ctx, cancel := context.WithCancel(context.Background())
	return &lifecycle{ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}, workers: workers.New(workers.MaxIdle)}
}

// goroutine runs f in a goroutine that close waits for. Once closing it
// returns false and does not run f.
func (l *lifecycle) goroutine(f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	// Added under mu, before close can set closing and Wait: no Add
	// races the Wait.
	l.wg.Add(1)
	l.workers.Go(func() {
		defer l.wg.Done()
		f()
	})
	return true
}

// hold keeps c to be closed by close, until release. Once closing it
// closes c itself and returns false.
func (l *lifecycle) hold(c net.Conn) bool {
	l.mu.Lock()
	if !l.closing {
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		return true
	}
	l.mu.Unlock()
	c.Close()
	return false
}

func (l *lifecycle) release(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// close cancels the context, closes every held connection and waits for
// every goroutine started with goroutine.
func (l *lifecycle) close() {
	l.mu.Lock()
	l.closing = true
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	l.cancel()
	for c := range conns {
		c.Close()
	}
	l.wg.Wait()
	l.workers.Close()
}
