package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/controller/compile"
)

// Release is a traffic group's desired state as of its last apply.
type Release struct {
	Group      string
	Generation int64 // counts the group's applies
	At         time.Time
	States     map[string]*compile.State // by target name
}

// SaveRelease makes states the group's desired state, replacing its previous
// release, and returns the release's generation.
func (s *Store) SaveRelease(ctx context.Context, group string, states map[string]*compile.State) (int64, error) {
	var gen int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := deleteRelease(ctx, s, tx, group); err != nil {
			return err
		}
		for name, st := range states {
			spec, err := json.Marshal(st.Target)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO release_targets (grp, target, spec) VALUES (?, ?, ?)`), group, name, string(spec)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO known_targets (target, spec) VALUES (?, ?)
				ON CONFLICT (target) DO UPDATE SET spec = excluded.spec`), name, string(spec)); err != nil {
				return err
			}
			for _, o := range st.Objects {
				body := o.JSON() // as compiled: the bytes o.Hash is of
				if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO release_objects (grp, target, api_version, kind, namespace, name, hash, body)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), group, name, o.Ref.APIVersion, o.Ref.Kind, o.Ref.Namespace, o.Ref.Name, o.Hash, string(body)); err != nil {
					return err
				}
			}
		}
		err := tx.QueryRowContext(ctx, s.q(`SELECT generation FROM releases WHERE grp = ?`), group).Scan(&gen)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		gen++
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO releases (grp, generation, at) VALUES (?, ?, ?)
			ON CONFLICT (grp) DO UPDATE SET generation = excluded.generation, at = excluded.at`), group, gen, s.now().UnixNano()); err != nil {
			return err
		}
		return s.bump(ctx, tx)
	})
	return gen, err
}

// deleteRelease forgets a group's release (not its generation, which keeps
// counting if the group is created again).
func deleteRelease(ctx context.Context, s *Store, tx *sql.Tx, group string) error {
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM release_objects WHERE grp = ?`), group); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, s.q(`DELETE FROM release_targets WHERE grp = ?`), group)
	return err
}

// Releases returns the releases of the given group, or of every group if group
// is empty, keyed by group.
func (s *Store) Releases(ctx context.Context, group string) (map[string]*Release, error) {
	out := map[string]*Release{}
	cond, args := "", []any{}
	if group != "" {
		cond, args = " WHERE grp = ?", []any{group}
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT grp, generation, at FROM releases`+cond), args...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		r := &Release{States: map[string]*compile.State{}}
		var at int64
		if err := rows.Scan(&r.Group, &r.Generation, &at); err != nil {
			rows.Close()
			return nil, err
		}
		r.At = time.Unix(0, at).UTC()
		out[r.Group] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.db.QueryContext(ctx, s.q(`SELECT grp, target, spec FROM release_targets`+cond), args...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var grp, name, spec string
		if err := rows.Scan(&grp, &name, &spec); err != nil {
			rows.Close()
			return nil, err
		}
		st := &compile.State{}
		if err := json.Unmarshal([]byte(spec), &st.Target); err != nil {
			rows.Close()
			return nil, fmt.Errorf("stored target %s is corrupt: %w", name, err)
		}
		if r := out[grp]; r != nil {
			r.States[name] = st
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.db.QueryContext(ctx, s.q(`SELECT grp, target, api_version, kind, namespace, name, hash, body FROM release_objects`+cond+
		` ORDER BY grp, target, api_version, kind, namespace, name`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var grp, target, body string
		var o compile.Object
		if err := rows.Scan(&grp, &target, &o.Ref.APIVersion, &o.Ref.Kind, &o.Ref.Namespace, &o.Ref.Name, &o.Hash, &body); err != nil {
			return nil, err
		}
		o.Object = &unstructured.Unstructured{}
		if err := json.Unmarshal([]byte(body), &o.Object.Object); err != nil {
			return nil, fmt.Errorf("stored object %s is corrupt: %w", o.Ref, err)
		}
		if r := out[grp]; r != nil && r.States[target] != nil {
			st := r.States[target]
			st.Objects = append(st.Objects, o)
		}
	}
	return out, rows.Err()
}

// Applied returns what target last had applied, by reference, with the hash
// of each body. Bodies are left as their stored JSON (Object.Raw), checked to
// be JSON objects: a plan decodes only those whose hash differs.
func (s *Store) Applied(ctx context.Context, target string) (map[compile.Ref]compile.Object, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT api_version, kind, namespace, name, hash, body FROM applied WHERE target = ?`), target)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[compile.Ref]compile.Object{}
	for rows.Next() {
		var o compile.Object
		var body string
		if err := rows.Scan(&o.Ref.APIVersion, &o.Ref.Kind, &o.Ref.Namespace, &o.Ref.Name, &o.Hash, &body); err != nil {
			return nil, err
		}
		o.Raw = []byte(body)
		if !bytes.HasPrefix(bytes.TrimLeft(o.Raw, " \t\r\n"), []byte("{")) || !json.Valid(o.Raw) {
			return nil, fmt.Errorf("stored object %s is corrupt: not a JSON object", o.Ref)
		}
		out[o.Ref] = o
	}
	return out, rows.Err()
}

// KnownTargets returns every target any release ever named, so that a target
// whose last objects were withdrawn is still synced (to empty) after a restart.
func (s *Store) KnownTargets(ctx context.Context) (map[string]compile.Target, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT target, spec FROM known_targets`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]compile.Target{}
	for rows.Next() {
		var name, spec string
		if err := rows.Scan(&name, &spec); err != nil {
			return nil, err
		}
		var t compile.Target
		if err := json.Unmarshal([]byte(spec), &t); err != nil {
			return nil, fmt.Errorf("stored target %s is corrupt: %w", name, err)
		}
		out[name] = t
	}
	return out, rows.Err()
}
