// Package store keeps the controller's state in SQL: SQLite by default (the pure
// Go driver, one process) or PostgreSQL (several replicas, one leader). It holds
// the API objects with optimistic concurrency, the released desired state of
// every traffic group, what each target last had applied, per-resource status,
// and API tokens.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// Errors the API maps to HTTP statuses.
var (
	ErrNotFound       = errors.New("not found")
	ErrParentNotFound = errors.New("parent not found")
	ErrExists         = errors.New("already exists")
	// ErrConflict is a stale resourceVersion: someone else updated the object.
	ErrConflict    = errors.New("resourceVersion conflict")
	ErrHasChildren = errors.New("has children")
	ErrBadDSN      = errors.New("unsupported database URL")
)

// Store is the controller's database. It is safe for concurrent use.
type Store struct {
	db       *sql.DB
	postgres bool
	now      func() time.Time
}

// Open connects to dsn, sqlite://PATH or postgres://..., and migrates the schema.
func Open(ctx context.Context, dsn string) (*Store, error) {
	var s Store
	var err error
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		path := strings.TrimPrefix(dsn, "sqlite://")
		// WAL lets readers run beside the writer; busy_timeout queues writers
		// instead of failing them; foreign keys are off by default in SQLite.
		s.db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate")
		if err == nil {
			// One writer at a time is all SQLite allows; a single connection
			// turns would-be SQLITE_BUSY errors into waiting.
			s.db.SetMaxOpenConns(1)
		}
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.postgres = true
		s.db, err = sql.Open("pgx", dsn)
	default:
		return nil, fmt.Errorf("%w: %q (want sqlite://PATH or postgres://...)", ErrBadDSN, dsn)
	}
	if err != nil {
		return nil, err
	}
	s.now = time.Now
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return &s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Postgres reports whether several replicas can share this store.
func (s *Store) Postgres() bool { return s.postgres }

// q rewrites ? placeholders to PostgreSQL's $n.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// migrations are applied in order, once each; append only.
var migrations = []string{
	`CREATE TABLE objects (
		kind TEXT NOT NULL, key TEXT NOT NULL, parent_kind TEXT NOT NULL, parent_key TEXT NOT NULL,
		rv BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, key));
	CREATE INDEX objects_parent ON objects (parent_kind, parent_key);
	CREATE TABLE release_targets (grp TEXT NOT NULL, target TEXT NOT NULL, spec TEXT NOT NULL, PRIMARY KEY (grp, target));
	CREATE TABLE release_objects (grp TEXT NOT NULL, target TEXT NOT NULL, api_version TEXT NOT NULL, kind TEXT NOT NULL,
		namespace TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL,
		PRIMARY KEY (grp, target, api_version, kind, namespace, name));
	CREATE TABLE known_targets (target TEXT PRIMARY KEY, spec TEXT NOT NULL);
	CREATE TABLE releases (grp TEXT PRIMARY KEY, generation BIGINT NOT NULL, at BIGINT NOT NULL);
	CREATE TABLE applied (target TEXT NOT NULL, api_version TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL,
		name TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL, at BIGINT NOT NULL,
		PRIMARY KEY (target, api_version, kind, namespace, name));
	CREATE TABLE status (target TEXT NOT NULL, api_version TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL,
		name TEXT NOT NULL, state TEXT NOT NULL, error TEXT NOT NULL, attempts BIGINT NOT NULL, at BIGINT NOT NULL, hash TEXT NOT NULL,
		PRIMARY KEY (target, api_version, kind, namespace, name));
	CREATE TABLE tokens (hash TEXT PRIMARY KEY, role TEXT NOT NULL, at BIGINT NOT NULL);
	CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
	INSERT INTO counters (name, value) VALUES ('generation', 0)`,
}

// migrationLock serialises replicas migrating one PostgreSQL database at once.
const migrationLock = 0x77656674 // "weft"

func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if s.postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for v := have; v < len(migrations); v++ {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, stmt := range strings.Split(migrations[v], ";\n") {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				tx.Rollback()
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version) VALUES (?)`), v+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	return nil
}

// Reset empties every table but the schema's; tests use it to share one
// PostgreSQL database.
func (s *Store) Reset(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, t := range []string{"objects", "release_targets", "release_objects", "known_targets", "releases", "applied", "status", "tokens"} {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+t); err != nil {
				return err
			}
		}
		return nil
	})
}

// tx runs f in a transaction, committing if it returns nil.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// bump advances the generation, which tells other replicas' leader that the
// desired state may have changed.
func (s *Store) bump(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE counters SET value = value + 1 WHERE name = 'generation'`)
	return err
}

// Generation returns a number that grows with every write.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	var g int64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'generation'`).Scan(&g)
	return g, err
}
