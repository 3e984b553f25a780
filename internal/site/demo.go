package site

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"weft.dev/weft/internal/observe/tracing"
	"weft.dev/weft/internal/resource"
)

// DemoOptions configure Demo.
type DemoOptions struct {
	Dir    string // where the sites keep their data; a temporary directory if empty
	Port   int    // the listener's port at the first site; 0 picks a free one
	Logger *slog.Logger
	// Command is how the printed commands call weft, such as "weft" or
	// the binary's path; default "weft".
	Command string
	// Tracing is where the sites' spans go; nil records none.
	Tracing *tracing.Provider
}

// Demo runs a line of three sites on this host, east - transit - west, with an
// HTTP service at west reachable through a listener at east, and tells what to
// try. It runs until ctx ends.
func Demo(ctx context.Context, w io.Writer, o DemoOptions) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "weft-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	names := []string{"east", "transit", "west"}
	sites := make([]*Site, len(names))
	errc := make(chan error, len(names))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	for i, n := range names {
		s, err := New(Options{Name: n, DataDir: filepath.Join(o.Dir, n), Logger: o.Logger, Tracing: o.Tracing})
		if err != nil {
			return err
		}
		sites[i] = s
		go func() { errc <- s.Run(runCtx) }()
		fmt.Fprintf(w, "started site %-8s admin %s  link %s\n", n, s.AdminAddr(), s.LinkAddr())
	}
	for i := 0; i+1 < len(sites); i++ {
		tok, err := sites[i+1].IssueToken(time.Minute, 1)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "linking %s -> %s ... ", names[i], names[i+1])
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = sites[i].CreateLink(lctx, "", 1, tok)
		cancel()
		if err != nil {
			return err
		}
		fmt.Fprintln(w, "up")
	}

	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello from site west (you asked for %s)\n", r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(backend)
	defer srv.Close()

	west, east := sites[2], sites[0]
	c := resource.Connector{Spec: resource.ConnectorSpec{Address: "hello", Target: backend.Addr().String()}}
	if err := c.Default(); err != nil {
		return err
	}
	west.SetConnector(c)
	l := resource.Listener{Spec: resource.ListenerSpec{Address: "hello", Port: o.Port}}
	if err := l.Default(); err != nil {
		return err
	}
	lv, err := east.SetListener(l)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "waiting for east to learn where \"hello\" is served ... ")
	for len(east.Table().Candidates("hello")) == 0 {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
	fmt.Fprintln(w, "done")
	weft := o.Command
	if weft == "" {
		weft = "weft"
	}
	fmt.Fprintf(w, `
The demo network is up: east - transit - west, with service "hello" served at west.
Try, in another terminal:
  curl http://%s/
  %s --site %s status
  %s --site %s link list
Press Ctrl-C to stop.
`, lv.Listen, shellQuote(weft), shellQuote(filepath.Join(o.Dir, "east")), shellQuote(weft), shellQuote(filepath.Join(o.Dir, "transit")))
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	stop()
	for range sites {
		<-errc
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs it, so that a printed
// command can be pasted as it is.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
