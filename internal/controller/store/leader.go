package store

import (
	"context"
	"database/sql"
	"time"

	"k8s.io/utils/clock"
)

// leaderLock is the PostgreSQL advisory lock held by the leading replica.
const leaderLock = 0x77656675

// Lead blocks until this replica leads, then returns a context that is cancelled
// when leadership is lost (or ctx ends), and a release function the caller must
// call when done. On SQLite, which one process owns, it leads at once.
//
// On PostgreSQL the lock belongs to one session: the dedicated connection is
// pinged every interval, and a failed ping means the session, and so the lock,
// may be gone. A standby tries again every interval. clk times both.
func (s *Store) Lead(ctx context.Context, clk clock.WithTicker, interval time.Duration) (context.Context, func(), error) {
	if !s.postgres {
		lctx, cancel := context.WithCancel(ctx)
		return lctx, cancel, nil
	}
	for {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return nil, nil, err
		}
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLock).Scan(&got); err != nil {
			conn.Close()
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
		} else if got {
			return s.hold(ctx, conn, clk, interval)
		} else {
			conn.Close()
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-clk.After(interval):
		}
	}
}

func (s *Store) hold(ctx context.Context, conn *sql.Conn, clk clock.WithTicker, interval time.Duration) (context.Context, func(), error) {
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := clk.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C():
				if err := conn.PingContext(lctx); err != nil {
					cancel()
					return
				}
			}
		}
	}()
	release := func() {
		cancel()
		<-done
		conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, leaderLock)
		conn.Close()
	}
	return lctx, release, nil
}
