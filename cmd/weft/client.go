package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// adminClient calls a site's admin API, found through the site's data directory.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

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
	return &adminClient{
		base:  "http://" + strings.TrimSpace(string(addr)),
		token: strings.TrimSpace(string(tok)),
		http:  &http.Client{Timeout: 60 * time.Second},
	}, nil
}

// do sends a request and decodes a JSON answer into out (when out is non-nil).
// API errors come back as Go errors carrying the server's message.
func (c *adminClient) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("the site's admin API at %s does not answer (is `weft site run` running?): %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return errors.New(e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	return json.Unmarshal(b, out)
}

func (c *adminClient) json(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}
