package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
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
func startWeft(ctx context.Context, cl *benchproc.Cleanups, bin string, routes []route) (map[string]string, []*benchproc.Proc, error) {
	a, b, procs, err := benchproc.WeftPair(ctx, cl, bin)
	if err != nil {
		return nil, nil, err
	}
	addrs := map[string]string{}
	for _, r := range routes {
		if _, err := benchproc.WeftCLI(ctx, bin, b, "connector", "create", r.name, "--target", r.target); err != nil {
			return nil, nil, err
		}
		out, err := benchproc.WeftCLI(ctx, bin, a, "listener", "create", r.name, "--port", "0", "-o", "json")
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
	err = benchproc.Poll(ctx, 20*time.Second, "site a to see every address", func() error {
		out, err := benchproc.WeftCLI(ctx, bin, a, "status", "-o", "json")
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
