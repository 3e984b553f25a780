package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"text/template"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
)

// tlsCiphersuite is pinned on both HAProxy sides to what Go picks for weft's
// links on a CPU with AES instructions, so that the two TLS paths do the
// same cryptographic work per byte (OpenSSL would otherwise prefer
// AES-256-GCM).
const tlsCiphersuite = "TLS_AES_128_GCM_SHA256"

// haproxyConfig is the configuration of one HAProxy. A has a plain TCP
// frontend per route and a backend that connects to B over mutual TLS 1.3;
// B terminates that TLS (requiring a client certificate from the bench CA)
// and connects to the in-process server. Without TLS (the floor path), A
// and B are joined by plain TCP. Certificates are ECDSA P-256 like
// weft's. maxconn is far above what the tests hold open (32 connections, or
// the dialers' few in flight plus TIME_WAIT-free closes) yet low enough that
// HAProxy's file-descriptor need fits a container's usual limit. Timeouts are
// only there because HAProxy warns without them; they
// are far longer than any measurement's idle time.
var haproxyConfig = template.Must(template.New("cfg").Parse(`global
    maxconn 4000
    ssl-default-bind-ciphersuites {{.Suite}}
    ssl-default-server-ciphersuites {{.Suite}}
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3

defaults
    mode tcp
    timeout connect 10s
    timeout client 60s
    timeout server 60s
{{range .Routes}}
frontend fe_{{.Name}}
    bind 127.0.0.1:{{.Port}}{{if and $.TLS $.Terminate}} ssl crt {{$.Dir}}/b.pem ca-file {{$.Dir}}/ca.pem verify required{{end}}
    default_backend be_{{.Name}}

backend be_{{.Name}}
    server next {{.Next}}{{if and $.TLS (not $.Terminate)}} ssl verify required ca-file {{$.Dir}}/ca.pem crt {{$.Dir}}/a.pem sni str(haproxy-b) verifyhost haproxy-b{{end}}
{{end}}`))

type haproxyRoute struct {
	Name string
	Port int
	Next string
}

// startHAProxy runs the two HAProxy instances of a reference path, joined
// by mutual TLS or, without tls, by plain TCP, and returns A's frontend
// addresses by route name.
func startHAProxy(ctx context.Context, cl *benchproc.Cleanups, bin string, routes []route, tls bool) (map[string]string, []*benchproc.Proc, error) {
	dir, err := os.MkdirTemp("", "haproxy-bench-")
	if err != nil {
		return nil, nil, err
	}
	cl.Add(func() { os.RemoveAll(dir) })
	if err := benchproc.WriteCerts(dir); err != nil {
		return nil, nil, err
	}
	var ra, rb []haproxyRoute
	addrs := map[string]string{}
	for _, r := range routes {
		pa, err := benchproc.FreePort()
		if err != nil {
			return nil, nil, err
		}
		pb, err := benchproc.FreePort()
		if err != nil {
			return nil, nil, err
		}
		rb = append(rb, haproxyRoute{Name: r.name, Port: pb, Next: r.target})
		ra = append(ra, haproxyRoute{Name: r.name, Port: pa, Next: fmt.Sprintf("127.0.0.1:%d", pb)})
		addrs[r.name] = fmt.Sprintf("127.0.0.1:%d", pa)
	}
	var procs []*benchproc.Proc
	// B first, so that A's first connections find it listening.
	for _, inst := range []struct {
		name      string
		routes    []haproxyRoute
		terminate bool
	}{{"b", rb, true}, {"a", ra, false}} {
		var cfg bytes.Buffer
		err := haproxyConfig.Execute(&cfg, map[string]any{
			"Suite": tlsCiphersuite, "Routes": inst.routes, "Terminate": inst.terminate, "TLS": tls, "Dir": dir,
		})
		if err != nil {
			return nil, nil, err
		}
		path := filepath.Join(dir, "haproxy-"+inst.name+".cfg")
		if err := os.WriteFile(path, cfg.Bytes(), 0o600); err != nil {
			return nil, nil, err
		}
		// -c checks the file first, so a bad configuration is reported with
		// HAProxy's own message instead of as a timeout later.
		if out, err := exec.CommandContext(ctx, bin, "-c", "-q", "-f", path).CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("haproxy -c %s: %v\n%s", path, err, out)
		}
		p, err := benchproc.Start(cl, "haproxy "+inst.name, bin, "-db", "-f", path)
		if err != nil {
			return nil, nil, err
		}
		procs = append(procs, p)
		for _, r := range inst.routes {
			err := benchproc.Poll(ctx, 10*time.Second, "haproxy "+inst.name+" to listen", func() error {
				if p.Exited() {
					return benchproc.Fatal(fmt.Errorf("haproxy exited: %s", p.Output()))
				}
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.Port), time.Second)
				if err != nil {
					return err
				}
				return c.Close()
			})
			if err != nil {
				return nil, nil, err
			}
		}
	}
	return addrs, procs, nil
}
