package api_test

import (
	"testing"

	"weft.dev/weft/test/envtest"
)

// TestPostgres runs the API suite on a real PostgreSQL as well.
func TestPostgres(t *testing.T) {
	envtest.RunOnPostgres(t, map[string]func(*testing.T){
		"IssueSequence": TestIssueSequence,
		"Errors":        TestErrors,
		"OpenAPI":       TestOpenAPI,
	})
}
