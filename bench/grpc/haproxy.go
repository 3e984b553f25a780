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

// haproxyPair is the reference path of the HTTP benchmarks: HAProxy a in
// mode http takes the client's requests (HTTP/1.1, or h2c with h2) and
// sends them to HAProxy b as HTTP/2 over mutual TLS 1.3 (ALPN h2, client
// certificate required, TLS_AES_128_GCM_SHA256 as Go picks for weft's
// links); b sends them on to the target in the client's version. It is
// the same shape as weft's a -> link -> b, with h2 multiplexing many
// requests on the a -> b connection as the link does.
var haproxyPair = template.Must(template.New("cfg").Parse(`global
    maxconn 4000
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256
    ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3

defaults
    mode http
    timeout connect 10s
    timeout client 60s
    timeout server 60s

frontend fe
{{- if .B}}
    bind {{.Listen}} ssl crt {{.Dir}}/b.pem ca-file {{.Dir}}/ca.pem verify required alpn h2
{{- else}}
    bind {{.Listen}}{{if .H2}} proto h2{{end}}
{{- end}}
    default_backend be

backend be
{{- if .B}}
    server target {{.Next}}{{if .H2}} proto h2{{end}}
{{- else}}
    server b {{.Next}} ssl verify required ca-file {{.Dir}}/ca.pem crt {{.Dir}}/a.pem sni str(haproxy-b) verifyhost haproxy-b alpn h2
{{- end}}
`))

// startHAProxyPair runs the pair in front of target (h2: the client and
// the target speak h2c, else HTTP/1.1) and returns a's address and the
// two processes.
func startHAProxyPair(ctx context.Context, cl *benchproc.Cleanups, bin, target string, h2 bool) (string, []*benchproc.Proc, error) {
	dir, err := os.MkdirTemp("", "weft-bench-haproxy-")
	if err != nil {
		return "", nil, err
	}
	cl.Add(func() { os.RemoveAll(dir) })
	if err := benchproc.WriteCerts(dir); err != nil {
		return "", nil, err
	}
	var addrs [2]string
	for i := range addrs {
		port, err := benchproc.FreePort()
		if err != nil {
			return "", nil, err
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	var procs []*benchproc.Proc
	// b first, so that a's first connections find it listening.
	for _, inst := range []struct {
		name         string
		b            bool
		listen, next string
	}{{"b", true, addrs[1], target}, {"a", false, addrs[0], addrs[1]}} {
		var cfg bytes.Buffer
		err := haproxyPair.Execute(&cfg, map[string]any{"B": inst.b, "H2": h2, "Listen": inst.listen, "Next": inst.next, "Dir": dir})
		if err != nil {
			return "", nil, err
		}
		path := filepath.Join(dir, "haproxy-"+inst.name+".cfg")
		if err := os.WriteFile(path, cfg.Bytes(), 0o600); err != nil {
			return "", nil, err
		}
		// -c first, so that a bad configuration is reported with HAProxy's
		// own words rather than as a timeout.
		if out, err := exec.CommandContext(ctx, bin, "-c", "-q", "-f", path).CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("haproxy -c %s: %v\n%s", path, err, out)
		}
		p, err := benchproc.Start(cl, "haproxy "+inst.name, bin, "-db", "-f", path)
		if err != nil {
			return "", nil, err
		}
		procs = append(procs, p)
		err = benchproc.Poll(ctx, 10*time.Second, "haproxy "+inst.name+" to listen", func() error {
			if p.Exited() {
				return benchproc.Fatal(fmt.Errorf("haproxy %s exited: %s", inst.name, p.Output()))
			}
			c, err := net.DialTimeout("tcp", inst.listen, time.Second)
			if err != nil {
				return err
			}
			return c.Close()
		})
		if err != nil {
			return "", nil, err
		}
	}
	return addrs[0], procs, nil
}
