package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/apiclient"
	"weft.dev/weft/internal/controller"
)

// Files in a site's data directory that the command line reads: where the
// admin and event APIs listen, and the admin credential (mode 0600).
const (
	siteAdminAddrFile  = "admin.addr"
	siteAdminTokenFile = "admin.token"
	siteEventsAddrFile = "events.addr"
)

// errNoSite is what a command that needs a site says without one.
var errNoSite = errors.New("which site? pass --site DIR (the --data directory of a running `weft site run`) or set WEFT_SITE")

// adminClient calls a site's admin API, found through the site's data directory.
type adminClient struct{ api apiclient.Client }

func siteClient() (*adminClient, error) {
	if g.site == "" {
		return nil, errNoSite
	}
	addr, err := os.ReadFile(filepath.Join(g.site, siteAdminAddrFile))
	if err != nil {
		return nil, fmt.Errorf("no running site found in %s (%v): start one with `weft site run --name NAME --data %s`", g.site, err, g.site)
	}
	tok, err := os.ReadFile(filepath.Join(g.site, siteAdminTokenFile))
	if err != nil {
		return nil, fmt.Errorf("cannot read the site's admin credential (%w): run weft as the user that runs the site", err)
	}
	return &adminClient{apiclient.Client{
		Base:  "http://" + strings.TrimSpace(string(addr)),
		Token: strings.TrimSpace(string(tok)),
		HTTP:  &http.Client{Timeout: 60 * time.Second},
	}}, nil
}

// do sends a request and decodes a JSON answer into out (when non-nil).
// A site that does not answer gets an error that says what to check.
func (c *adminClient) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	return c.reachable(c.api.Do(ctx, method, path, body, contentType, out))
}

func (c *adminClient) json(ctx context.Context, method, path string, in, out any) error {
	return c.reachable(c.api.JSON(ctx, method, path, in, out))
}

func (c *adminClient) reachable(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("the site's admin API at %s does not answer (is `weft site run --data %s` running?): %w", c.api.Base, g.site, err)
	}
	return err
}

// eventsURL is the event API of the site named by --site.
func eventsURL() (string, error) {
	if g.site == "" {
		return "", errNoSite
	}
	b, err := os.ReadFile(filepath.Join(g.site, siteEventsAddrFile))
	if err != nil {
		return "", fmt.Errorf("no running site found in %s (%v): start one with `weft site run --name NAME --data %s`", g.site, err, g.site)
	}
	return "http://" + strings.TrimSpace(string(b)), nil
}

// controllerClient talks to the controller's API.
type controllerClient struct{ api apiclient.Client }

// newControllerClient finds the controller. --controller (or
// WEFT_CONTROLLER) is its URL, or its data directory, which holds the
// address it serves on (api.addr) and the admin token. With a URL the token
// comes from WEFT_CONTROLLER_TOKEN or --data DIR/admin.token.
func newControllerClient() (*controllerClient, error) {
	if g.controller == "" {
		return nil, errors.New("which controller? pass --controller URL or DIR (its --data directory), or set WEFT_CONTROLLER")
	}
	base, tokDir := strings.TrimSuffix(g.controller, "/"), g.data
	if fi, err := os.Stat(g.controller); err == nil && fi.IsDir() {
		addr, err := os.ReadFile(filepath.Join(g.controller, controller.AddrFile))
		if err != nil {
			return nil, fmt.Errorf("no running controller found in %s (%v): start one with `weft controller run --data %s`", g.controller, err, g.controller)
		}
		base, tokDir = "http://"+strings.TrimSpace(string(addr)), g.controller
	} else if !strings.Contains(base, "://") {
		return nil, fmt.Errorf("--controller %q is neither a URL such as http://127.0.0.1:7480 nor a controller's data directory", g.controller)
	}
	tok := os.Getenv("WEFT_CONTROLLER_TOKEN")
	if tok == "" && tokDir != "" {
		b, err := os.ReadFile(filepath.Join(tokDir, controller.AdminTokenFile))
		if err != nil {
			return nil, fmt.Errorf("reading the controller's admin token (%w): run weft as the user that runs the controller, or set WEFT_CONTROLLER_TOKEN", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return nil, errors.New("no controller token: pass --controller DIR (the controller's data directory), or set WEFT_CONTROLLER_TOKEN")
	}
	return &controllerClient{apiclient.Client{Base: base, Token: tok}}, nil
}

func (c *controllerClient) do(ctx context.Context, method, path string, in, out any) error {
	err := c.api.JSON(ctx, method, path, in, out)
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("the controller at %s does not answer (is `weft controller run` running?): %w", c.api.Base, err)
	}
	return err
}

// wantsController says whether a command that serves both a site and the
// controller (status) is meant for the controller. An explicit --site
// always wins, so that an exported WEFT_CONTROLLER never takes a command
// away from the site it names; then an explicit --controller; then the
// environment, WEFT_SITE before WEFT_CONTROLLER.
func wantsController(cmd *cobra.Command) bool {
	flags := cmd.Flags()
	switch {
	case flags.Changed("site"):
		return false
	case flags.Changed("controller"):
		return true
	case g.site != "":
		return false
	}
	return g.controller != ""
}
