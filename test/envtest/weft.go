package envtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartWeftSite builds weft from this module (or uses $WEFT_BINARY) and runs
// `weft site run` as site name on free loopback ports, returning its admin
// API URL and bearer token.
func StartWeftSite(t testing.TB, name string) (adminURL, token string) {
	t.Helper()
	dir := tempDir(t, "site-"+name)
	bin := os.Getenv("WEFT_BINARY")
	if bin == "" {
		bin = filepath.Join(dir, "weft")
		out, err := exec.Command("go", "build", "-o", bin, "weft.dev/weft/cmd/weft").CombinedOutput()
		if err != nil {
			t.Fatalf("envtest: building weft: %v\n%s", err, out)
		}
	}
	data := filepath.Join(dir, "data")
	p := start(t, "weft site "+name, filepath.Join(dir, "site.log"), nil, bin,
		"site", "run", "--name", name, "--data", data, "--admin", "127.0.0.1:0")
	t.Cleanup(p.stop)
	ready := p.waitReady(t, 30*time.Second, func(ctx context.Context) error {
		// The site writes its address and token once it listens.
		a, err1 := os.ReadFile(filepath.Join(data, "admin.addr"))
		tok, err2 := os.ReadFile(filepath.Join(data, "admin.token"))
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		adminURL, token = "http://"+strings.TrimSpace(string(a)), strings.TrimSpace(string(tok))
		if adminURL == "http://" || token == "" {
			return fmt.Errorf("admin.addr or admin.token empty")
		}
		return httpOK(ctx, http.DefaultClient, adminURL+"/readyz")
	})
	if !ready { // it binds port 0: no other process can take it
		t.Fatalf("envtest: weft site %s: address in use; log:\n%s", name, p.logTail())
	}
	return adminURL, token
}
