package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// route is one service the paths carry: a name (weft address, HAProxy
// frontend) and the in-process server behind it.
type route struct {
	name   string
	target string
}

// startWeft runs two `weft site run` processes, links a to b with a token
// (b issues, a redeems: the mutual-TLS link of the architecture), serves every
// route at b with a connector and opens a listener for it at a. It returns the
// listeners' addresses by route name.
func startWeft(ctx context.Context, cl *cleanups, bin string, routes []route) (map[string]string, []*proc, error) {
	tmp, err := os.MkdirTemp("", "weft-bench-")
	if err != nil {
		return nil, nil, err
	}
	cl.add(func() { os.RemoveAll(tmp) })
	var procs []*proc
	dirs := map[string]string{}
	for _, name := range []string{"a", "b"} {
		dir := filepath.Join(tmp, name)
		p, err := startProc(cl, "weft site "+name, bin, "site", "run", "--name", name, "--data", dir)
		if err != nil {
			return nil, nil, err
		}
		procs = append(procs, p)
		dirs[name] = dir
		err = poll(ctx, 20*time.Second, "weft site "+name+" to be ready", func() error {
			if p.exited() {
				return fatal{fmt.Errorf("site exited: %s", p.out.String())}
			}
			b, err := os.ReadFile(filepath.Join(dir, "admin.addr"))
			if err != nil {
				return err
			}
			resp, err := http.Get("http://" + strings.TrimSpace(string(b)) + "/readyz")
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
			return nil, nil, err
		}
	}
	a, b := dirs["a"], dirs["b"]
	tok := filepath.Join(tmp, "token.yaml")
	if _, err := weftCLI(ctx, bin, b, "token", "issue", "-o", tok); err != nil {
		return nil, nil, err
	}
	if _, err := weftCLI(ctx, bin, a, "link", "create", tok); err != nil {
		return nil, nil, err
	}
	addrs := map[string]string{}
	for _, r := range routes {
		if _, err := weftCLI(ctx, bin, b, "connector", "create", r.name, "--target", r.target); err != nil {
			return nil, nil, err
		}
		out, err := weftCLI(ctx, bin, a, "listener", "create", r.name, "--port", "0", "-o", "json")
		if err != nil {
			return nil, nil, err
		}
		var l struct{ Listen string }
		if err := json.Unmarshal(out, &l); err != nil || l.Listen == "" {
			return nil, nil, fmt.Errorf("weft listener create %s: no listen address in %q (%v)", r.name, out, err)
		}
		addrs[r.name] = l.Listen
	}
	// The connectors' records reach a by flooding; until they do, a's
	// listeners would accept and close at once.
	err = poll(ctx, 20*time.Second, "site a to see every address", func() error {
		out, err := weftCLI(ctx, bin, a, "status", "-o", "json")
		if err != nil {
			return err
		}
		var st struct {
			Addresses []struct{ Address string }
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, x := range st.Addresses {
			seen[x.Address] = true
		}
		for _, r := range routes {
			if !seen[r.name] {
				return fmt.Errorf("address %s not yet in status", r.name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return addrs, procs, nil
}

// weftCLI runs `weft --site DIR args...` and returns its standard output.
func weftCLI(ctx context.Context, bin, dir string, args ...string) ([]byte, error) {
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
