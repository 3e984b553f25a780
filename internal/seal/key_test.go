package seal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	k, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, err := LoadOrCreateKey(path)
	if err != nil || again != k {
		t.Fatalf("reloaded key differs (%v)", err)
	}
	if k.Public == ([KeyLen]byte{}) || k.Public == k.Private {
		t.Fatal("no public key derived")
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("corrupt key file: %v", err)
	}
}
