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

	"weft.dev/weft/internal/apiclient"
)

// adminClient calls a site's admin API, found through the site's data directory.
type adminClient struct{ api apiclient.Client }

func siteClient() (*adminClient, error) {
	if g.site == "" {
		return nil, errors.New("which site? pass --site DIR (the site's --data directory) or set WEFT_SITE")
	}
	addr, err := os.ReadFile(filepath.Join(g.site, "admin.addr"))
	if err != nil {
		return nil, fmt.Errorf("no running site found in %s (%v): start one with `weft site run --data %s`", g.site, err, g.site)
	}
	tok, err := os.ReadFile(filepath.Join(g.site, "admin.token"))
	if err != nil {
		return nil, fmt.Errorf("cannot read the admin credential: %w", err)
	}
	return &adminClient{apiclient.Client{
		Base:  "http://" + strings.TrimSpace(string(addr)),
		Token: strings.TrimSpace(string(tok)),
		HTTP:  &http.Client{Timeout: 60 * time.Second},
	}}, nil
}

// do sends a request and decodes a JSON answer into out (when out is non-nil).
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
		return fmt.Errorf("the site's admin API at %s does not answer (is `weft site run` running?): %w", c.api.Base, err)
	}
	return err
}
