package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/child"
	"weft.dev/weft/internal/logbuf"
)

// subscribeCLI runs `weft subscribe` at s with extra arguments and env
// until the test ends; its output goes to the returned buffer.
func (s *site) subscribeCLI(t *testing.T, env []string, args ...string) *logbuf.Buffer {
	t.Helper()
	out, _, _ := s.startCLI(t, env, append([]string{"subscribe"}, args...)...)
	return out
}

// startCLI runs the CLI at s with env added until it exits or the test
// ends (with SIGINT then); its output goes to out, and done is closed once
// it has exited.
func (s *site) startCLI(t *testing.T, env []string, args ...string) (out *logbuf.Buffer, cmd *exec.Cmd, done <-chan struct{}) {
	t.Helper()
	out = &logbuf.Buffer{}
	cmd = exec.Command(weftBin, append([]string{"--site", s.dir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	p, err := child.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		<-p.Done()
	})
	return out, cmd, p.Done()
}

// TestEventCredentialsCLI: a site whose event API listens beyond loopback
// refuses `weft publish` and `weft subscribe` without a credential; with
// `weft credential create` an admin allows one client to publish under
// orders.> and another to subscribe to orders.*; each may do that and no
// more, and a deleted credential is refused. A site on loopback stays open.
func TestEventCredentialsCLI(t *testing.T) {
	a := startSite(t, "a", "--events", "0.0.0.0:0")
	if out, err := a.try("publish", "orders.created", "--data", "x"); err == nil || !strings.Contains(out, "Unauthorized") || !strings.Contains(out, "weft credential create") {
		t.Fatalf("publish without a credential: %v\n%s", err, out)
	}
	// The secret is stdout's one line; the note after it is stderr's.
	secret := func(out string) string { return strings.SplitN(out, "\n", 2)[0] }
	shop := secret(a.weft("credential", "create", "shop", "--publish", "orders.>"))
	audit := secret(a.weft("credential", "create", "audit", "--subscribe", "orders.*", "--expires", "1h"))
	cred := filepath.Join(t.TempDir(), "audit.cred")
	if err := os.WriteFile(cred, []byte(audit+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if list := a.weft("credential", "list"); !strings.Contains(list, "shop") || !strings.Contains(list, "orders.>") || !strings.Contains(list, "audit") || strings.Contains(list, shop) {
		t.Errorf("credential list:\n%s", list)
	}

	// Outside its patterns: audit may not subscribe to everything, shop
	// may not subscribe at all.
	if out, err := a.try("subscribe", "orders.>", "--credential", "@"+cred); err == nil || !strings.Contains(out, "Forbidden") {
		t.Errorf("subscribe to orders.> with audit: %v\n%s", err, out)
	}
	if out, err := a.try("subscribe", "orders.*", "--credential", shop); err == nil || !strings.Contains(out, "Forbidden") {
		t.Errorf("subscribe with shop: %v\n%s", err, out)
	}
	sub := a.subscribeCLI(t, nil, "orders.*", "--credential", "@"+cred)
	waitFor(t, 15*time.Second, "the subscription", func() bool { return strings.Contains(sub.String(), "subscribed to topic orders.*") })

	// WEFT_EVENTS_CREDENTIAL is --credential's default.
	env := func(args ...string) (string, error) {
		cmd := exec.Command(weftBin, append([]string{"--site", a.dir}, args...)...)
		cmd.Env = append(os.Environ(), "WEFT_EVENTS_CREDENTIAL="+shop)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := env("publish", "payments.made", "--data", "x"); err == nil || !strings.Contains(out, "Forbidden") {
		t.Errorf("publish outside shop's patterns: %v\n%s", err, out)
	}
	if out, err := env("publish", "orders.created", "--data", "hello-credential"); err != nil {
		t.Fatalf("publish with shop: %v\n%s", err, out)
	}
	waitFor(t, 15*time.Second, "the event at the subscriber", func() bool { return strings.Contains(sub.String(), "hello-credential") })

	a.weft("credential", "delete", "shop")
	if out, err := env("publish", "orders.created", "--data", "x"); err == nil || !strings.Contains(out, "Unauthorized") {
		t.Errorf("publish with a deleted credential: %v\n%s", err, out)
	}

	// On loopback (the default) the event API stays open, as for the demo.
	b := startSite(t, "b")
	b.weft("publish", "orders.created", "--data", "x")
}
