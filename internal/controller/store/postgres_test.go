package store_test

import (
	"testing"

	"weft.dev/weft/test/envtest"
)

// TestPostgres runs the store suite on a real PostgreSQL as well.
func TestPostgres(t *testing.T) {
	envtest.RunOnPostgres(t, map[string]func(*testing.T){
		"Objects":           TestObjects,
		"ConcurrentUpdates": TestConcurrentUpdates,
		"ReleaseAndStatus":  TestReleaseAndStatus,
		"TokensAndLeader":   TestTokensAndLeader,
		"LeaderHandOver":    TestLeaderHandOver,
	})
}
