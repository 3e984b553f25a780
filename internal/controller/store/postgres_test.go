package store_test

import (
	"os"
	"testing"

	"weft.dev/weft/test/envtest"
)

// TestPostgres runs the store suite against a real PostgreSQL started for it,
// so that the default run covers both drivers. With WEFT_TEST_DSN set the
// whole package already runs on that database and this test has nothing to add.
func TestPostgres(t *testing.T) {
	if os.Getenv("WEFT_TEST_DSN") != "" {
		t.Skip("WEFT_TEST_DSN set: every test already runs on PostgreSQL")
	}
	t.Setenv("WEFT_TEST_DSN", envtest.StartPostgres(t))
	t.Run("Objects", TestObjects)
	t.Run("ConcurrentUpdates", TestConcurrentUpdates)
	t.Run("ReleaseAndStatus", TestReleaseAndStatus)
	t.Run("TokensAndLeader", TestTokensAndLeader)
}
