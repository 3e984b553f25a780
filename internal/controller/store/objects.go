package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"weft.dev/weft/internal/controller/model"
)

// Kinds of stored API objects.
const (
	KindProject = "project"
	KindCluster = "cluster"
	KindApp     = "app"
	KindGroup   = "group"
	KindIntent  = "intent"
)

// Ref names a stored object: its kind and its path of names, such as
// "p1/shop/v1/g1/web-orders" for an intent.
type Ref struct{ Kind, Key string }

func (r Ref) String() string { return r.Kind + " " + r.Key }

// Root is the parent of projects.
var Root = Ref{}

// Create stores obj under ref if parent exists and ref does not; it sets the
// object's resourceVersion to 1 and its creation time.
func (s *Store) Create(ctx context.Context, ref, parent Ref, obj model.Object) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if parent != Root {
			if err := exists(ctx, s, tx, parent); err != nil {
				if errors.Is(err, ErrNotFound) {
					return fmt.Errorf("%w: %s", ErrParentNotFound, parent)
				}
				return err
			}
		}
		if err := exists(ctx, s, tx, ref); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, ref)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		m := obj.Meta()
		m.ResourceVersion = "1"
		m.CreationTimestamp = s.now().UTC().Truncate(1e9)
		body, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO objects (kind, key, parent_kind, parent_key, rv, body) VALUES (?, ?, ?, ?, 1, ?)`),
			ref.Kind, ref.Key, parent.Kind, parent.Key, string(body)); err != nil {
			return err
		}
		return s.bump(ctx, tx)
	})
}

func exists(ctx context.Context, s *Store, tx *sql.Tx, ref Ref) error {
	var one int
	err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM objects WHERE kind = ? AND key = ?`), ref.Kind, ref.Key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	return err
}

// Get loads ref into obj.
func (s *Store) Get(ctx context.Context, ref Ref, obj model.Object) error {
	var body string
	var rv int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT body, rv FROM objects WHERE kind = ? AND key = ?`), ref.Kind, ref.Key).Scan(&body, &rv)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	if err != nil {
		return err
	}
	return decode(body, rv, obj)
}

func decode(body string, rv int64, obj model.Object) error {
	if err := json.Unmarshal([]byte(body), obj); err != nil {
		return fmt.Errorf("stored object is corrupt: %w", err)
	}
	obj.Meta().ResourceVersion = strconv.FormatInt(rv, 10)
	return nil
}

// List returns the children of parent of the given kind, by key. The parent must
// exist, so that an unknown parent is told apart from an empty list.
func List[T any, PT interface {
	*T
	model.Object
}](ctx context.Context, s *Store, kind string, parent Ref) ([]PT, error) {
	if parent != Root {
		var one int
		err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM objects WHERE kind = ? AND key = ?`), parent.Kind, parent.Key).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: %s", ErrParentNotFound, parent)
		}
		if err != nil {
			return nil, err
		}
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT body, rv FROM objects WHERE kind = ? AND parent_kind = ? AND parent_key = ? ORDER BY key`),
		kind, parent.Kind, parent.Key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []PT{}
	for rows.Next() {
		var body string
		var rv int64
		if err := rows.Scan(&body, &rv); err != nil {
			return nil, err
		}
		obj := PT(new(T))
		if err := decode(body, rv, obj); err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, rows.Err()
}

// Update replaces ref with obj. If obj carries a resourceVersion it must match the
// stored one (else ErrConflict); without one the update is unconditional. The
// stored resourceVersion is incremented and written back into obj.
func (s *Store) Update(ctx context.Context, ref Ref, obj model.Object) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var body string
		var rv int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT body, rv FROM objects WHERE kind = ? AND key = ?`), ref.Kind, ref.Key).Scan(&body, &rv)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", ErrNotFound, ref)
		}
		if err != nil {
			return err
		}
		m := obj.Meta()
		if m.ResourceVersion != "" && m.ResourceVersion != strconv.FormatInt(rv, 10) {
			return fmt.Errorf("%w: %s is at resourceVersion %d, not %s", ErrConflict, ref, rv, m.ResourceVersion)
		}
		var old struct {
			Metadata model.Metadata `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(body), &old); err != nil {
			return fmt.Errorf("stored object is corrupt: %w", err)
		}
		m.CreationTimestamp = old.Metadata.CreationTimestamp
		m.ResourceVersion = strconv.FormatInt(rv+1, 10)
		data, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		// The rv condition makes the check and the write one atomic step even on
		// databases where the read above did not lock the row.
		res, err := tx.ExecContext(ctx, s.q(`UPDATE objects SET body = ?, rv = ? WHERE kind = ? AND key = ? AND rv = ?`),
			string(data), rv+1, ref.Kind, ref.Key, rv)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%w: %s changed concurrently", ErrConflict, ref)
		}
		return s.bump(ctx, tx)
	})
}

// Delete removes ref; it refuses while ref has children, and with a non-empty
// resourceVersion that is not the stored one.
func (s *Store) Delete(ctx context.Context, ref Ref, resourceVersion string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var rv int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT rv FROM objects WHERE kind = ? AND key = ?`), ref.Kind, ref.Key).Scan(&rv)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", ErrNotFound, ref)
		}
		if err != nil {
			return err
		}
		if resourceVersion != "" && resourceVersion != strconv.FormatInt(rv, 10) {
			return fmt.Errorf("%w: %s is at resourceVersion %d, not %s", ErrConflict, ref, rv, resourceVersion)
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM objects WHERE parent_kind = ? AND parent_key = ?`), ref.Kind, ref.Key).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %s has %d objects under it; delete them first", ErrHasChildren, ref, n)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM objects WHERE kind = ? AND key = ?`), ref.Kind, ref.Key); err != nil {
			return err
		}
		if ref.Kind == KindGroup {
			// A deleted group's objects are no longer desired anywhere.
			if err := deleteRelease(ctx, s, tx, ref.Key); err != nil {
				return err
			}
		}
		return s.bump(ctx, tx)
	})
}
