package benchproc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// WeftPair runs `weft site run` for sites a and b in a temporary directory,
// waits until both are ready and links a to b (b issues the token, a redeems
// it: the mutual-TLS link of the architecture). It returns their data
// directories. extra are added to both sites' `site run` arguments.
func WeftPair(ctx context.Context, cl *Cleanups, bin string, extra ...string) (a, b string, procs []*Proc, err error) {
	return WeftPairEnv(ctx, cl, bin, nil, extra...)
}

// WeftPairEnv is WeftPair with env(name) added to site name's environment
// (env may be nil).
func WeftPairEnv(ctx context.Context, cl *Cleanups, bin string, env func(name string) []string, extra ...string) (a, b string, procs []*Proc, err error) {
	tmp, err := os.MkdirTemp("", "weft-bench-")
	if err != nil {
		return "", "", nil, err
	}
	cl.Add(func() { os.RemoveAll(tmp) })
	dirs := map[string]string{}
	for _, name := range []string{"a", "b"} {
		dir := filepath.Join(tmp, name)
		var e []string
		if env != nil {
			e = env(name)
		}
		p, err := startWeftSite(ctx, cl, bin, name, dir, nil, e, extra...)
		if err != nil {
			return "", "", nil, err
		}
		procs = append(procs, p)
		dirs[name] = dir
	}
	a, b = dirs["a"], dirs["b"]
	tok := filepath.Join(tmp, "token.yaml")
	if _, err := WeftCLI(ctx, bin, b, "token", "issue", "--file", tok); err != nil {
		return "", "", nil, err
	}
	if _, err := WeftCLI(ctx, bin, a, "link", "create", tok); err != nil {
		return "", "", nil, err
	}
	return a, b, procs, nil
}

// WeftCLI runs `weft --site DIR args...` and returns its standard output.
func WeftCLI(ctx context.Context, bin, dir string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--site", dir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("weft %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// readyClient bounds each readiness probe, so that a site that accepts but
// never answers is reported at Poll's deadline, not waited on for ever. It
// keeps no connection open: nothing would close it before the site stops.
var readyClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// StartWeftSite runs `weft site run --name NAME --data DIR extra...`, its
// output also copied to tee when not nil, and waits until the site answers
// /readyz. Started again on the same DIR after a crash, it is the same site
// (identity, links, services) on the same link address.
func StartWeftSite(ctx context.Context, cl *Cleanups, bin, name, dir string, tee io.Writer, extra ...string) (*Proc, error) {
	return startWeftSite(ctx, cl, bin, name, dir, tee, nil, extra...)
}

func startWeftSite(ctx context.Context, cl *Cleanups, bin, name, dir string, tee io.Writer, env []string, extra ...string) (*Proc, error) {
	// A predecessor's admin.addr names a port that is dead or, worse, now
	// someone else's: readiness must be read from the new one.
	os.Remove(filepath.Join(dir, "admin.addr"))
	args := append([]string{"site", "run", "--name", name, "--data", dir}, extra...)
	p, err := startEnv(cl, "weft site "+name, tee, env, bin, args...)
	if err != nil {
		return nil, err
	}
	err = Poll(ctx, 20*time.Second, "weft site "+name+" to be ready", func() error {
		if p.Exited() {
			return Fatal(fmt.Errorf("site exited: %s", p.Output()))
		}
		addr, err := os.ReadFile(filepath.Join(dir, "admin.addr"))
		if err != nil {
			return err
		}
		resp, err := readyClient.Get("http://" + strings.TrimSpace(string(addr)) + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}
