// Package workers runs short tasks on goroutines that outlive them.
//
// A new goroutine starts on a small stack, and one that calls deep (a
// stream handler dialing its target through net, a carry picking a
// candidate) grows it by copying, frame by frame, once per doubling: in
// the new-connection benchmark that was 8% of the egress site's CPU and 4%
// of the ingress's (bench/README.md). A [Pool] hands each task to a worker
// that finished an earlier one, whose stack is already grown; only when
// none is idle does it start a goroutine. The garbage collector may still
// shrink an idle worker's stack, so a stack is copied about once per
// worker and collection instead of once per task.
package workers

import (
	"sync"
	"sync/atomic"
)

// Pool runs tasks on reused goroutines. Its zero value is not usable; see
// [New].
type Pool struct {
	maxIdle int32
	work    chan func()   // unbuffered: a send succeeds only into an idle worker
	stop    chan struct{} // closed by Close
	idle    atomic.Int32  // workers waiting for a task (approximately)
	wg      sync.WaitGroup
	closed  sync.Once
}

// MaxIdle suits a pool of connection handlers: enough idle workers for a
// burst of short connections, each holding a grown stack (tens of KiB).
const MaxIdle = 64

// New returns a pool that keeps at most maxIdle workers waiting for tasks;
// a worker that finds that many waiting ends instead.
func New(maxIdle int) *Pool {
	return &Pool{maxIdle: int32(maxIdle), work: make(chan func()), stop: make(chan struct{})}
}

// Go runs f on an idle worker, or on a new goroutine if none is idle. It
// never waits for a worker. Tasks given after Close still run, each on a
// goroutine that ends with it.
func (p *Pool) Go(f func()) {
	select {
	case p.work <- f:
		return
	default:
	}
	p.wg.Add(1)
	go p.run(f)
}

func (p *Pool) run(f func()) {
	defer p.wg.Done()
	for {
		f()
		f = nil // not kept alive while idle
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			return
		}
		select {
		case f = <-p.work:
			p.idle.Add(-1)
		case <-p.stop:
			p.idle.Add(-1)
			return
		}
	}
}

// Close ends the idle workers and waits for every worker, so also for the
// tasks still running. The caller must not call Go while Close runs.
func (p *Pool) Close() {
	p.closed.Do(func() { close(p.stop) })
	p.wg.Wait()
}
