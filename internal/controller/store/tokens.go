package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

// API roles.
const (
	RoleAdmin    = "admin"
	RoleReadOnly = "read-only"
)

// ErrUnknownToken is returned for a token the store does not hold.
var ErrUnknownToken = errors.New("unknown token")

// Tokens are kept as SHA-256 hashes: they are 256-bit random, so a fast hash
// suffices, and a copy of the database does not grant access.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// AddToken stores token with role.
func (s *Store) AddToken(ctx context.Context, token, role string) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO tokens (hash, role, at) VALUES (?, ?, ?)`), tokenHash(token), role, s.now().UnixNano())
	return err
}

// TokenRole returns token's role.
func (s *Store) TokenRole(ctx context.Context, token string) (string, error) {
	var role string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT role FROM tokens WHERE hash = ?`), tokenHash(token)).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrUnknownToken
	}
	if err != nil {
		return "", fmt.Errorf("token lookup: %w", err)
	}
	return role, nil
}

// HasAdmin reports whether any admin token exists.
func (s *Store) HasAdmin(ctx context.Context) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM tokens WHERE role = ?`), RoleAdmin).Scan(&n)
	return n > 0, err
}
