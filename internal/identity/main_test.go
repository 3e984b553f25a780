package identity

import (
	"testing"

	"go.uber.org/goleak"
)

// The TLS tests run one side of each handshake in a goroutine; a leak means a
// handshake that never finished.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
