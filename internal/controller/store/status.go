package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"weft.dev/weft/internal/controller/compile"
)

// States of a delivered object.
const (
	StatePending = "pending"
	StateApplied = "applied"
	StateFailed  = "failed"
	StateDeleted = "deleted"
)

// Status is the delivery state of one object at one target.
type Status struct {
	Target   string      `json:"target"`
	Ref      compile.Ref `json:"ref"`
	State    string      `json:"state"`
	Error    string      `json:"error,omitempty"`
	Attempts int         `json:"attempts"`
	At       time.Time   `json:"at"`
	Hash     string      `json:"hash,omitempty"`
}

// RecordStatus stores st. When an object is applied, the released body with that
// reference becomes what the target has, which later plans diff against; when
// it is deleted, the target no longer has it.
func (s *Store) RecordStatus(ctx context.Context, st Status) error {
	if st.At.IsZero() {
		st.At = s.now()
	}
	r := st.Ref
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO status (target, api_version, kind, namespace, name, state, error, attempts, at, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (target, api_version, kind, namespace, name) DO UPDATE SET
			state = excluded.state, error = excluded.error, attempts = excluded.attempts, at = excluded.at, hash = excluded.hash`),
			st.Target, r.APIVersion, r.Kind, r.Namespace, r.Name, st.State, st.Error, st.Attempts, st.At.UnixNano(), st.Hash); err != nil {
			return err
		}
		switch st.State {
		case StateApplied:
			// Prefer the released body whose hash is the one applied; any release
			// holding the reference has the same body unless releases disagree.
			var hash, body string
			err := tx.QueryRowContext(ctx, s.q(`SELECT hash, body FROM release_objects
				WHERE target = ? AND api_version = ? AND kind = ? AND namespace = ? AND name = ?
				ORDER BY CASE WHEN hash = ? THEN 0 ELSE 1 END, grp LIMIT 1`),
				st.Target, r.APIVersion, r.Kind, r.Namespace, r.Name, st.Hash).Scan(&hash, &body)
			if errors.Is(err, sql.ErrNoRows) {
				return nil // no longer desired; the engine will delete it
			}
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, s.q(`INSERT INTO applied (target, api_version, kind, namespace, name, hash, body, at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (target, api_version, kind, namespace, name) DO UPDATE SET hash = excluded.hash, body = excluded.body, at = excluded.at`),
				st.Target, r.APIVersion, r.Kind, r.Namespace, r.Name, hash, body, st.At.UnixNano())
			return err
		case StateDeleted:
			_, err := tx.ExecContext(ctx, s.q(`DELETE FROM applied WHERE target = ? AND api_version = ? AND kind = ? AND namespace = ? AND name = ?`),
				st.Target, r.APIVersion, r.Kind, r.Namespace, r.Name)
			return err
		}
		return nil
	})
}

// Statuses returns the recorded status of every object at target, by reference.
func (s *Store) Statuses(ctx context.Context, target string) (map[compile.Ref]Status, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT api_version, kind, namespace, name, state, error, attempts, at, hash FROM status WHERE target = ?`), target)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[compile.Ref]Status{}
	for rows.Next() {
		st := Status{Target: target}
		var at int64
		if err := rows.Scan(&st.Ref.APIVersion, &st.Ref.Kind, &st.Ref.Namespace, &st.Ref.Name, &st.State, &st.Error, &st.Attempts, &at, &st.Hash); err != nil {
			return nil, err
		}
		st.At = time.Unix(0, at).UTC()
		out[st.Ref] = st
	}
	return out, rows.Err()
}
