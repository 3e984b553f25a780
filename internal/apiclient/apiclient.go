// Package apiclient calls weft's JSON APIs, a site's admin API and the
// controller's: a bearer token, JSON bodies, and the one error shape both
// serve, {"error":{"code","message","field"}} (apitype.ErrorBody).
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"weft.dev/weft/internal/apitype"
)

// maxAnswer bounds an answer read into memory: a listing of every resource of
// a large site fits many times over.
const maxAnswer = 64 << 20

// Client is one API endpoint and its credential.
type Client struct {
	Base  string // scheme and host, without a trailing slash
	Token string
	HTTP  *http.Client // nil: http.DefaultClient
}

// Error is an answer outside 2xx. Code, Message and Field are the API's
// error body when it had one; Body is then empty, else the start of what
// came.
type Error struct {
	Method, Path string
	Status       int
	Code         string
	Message      string
	Field        string
	Body         string
}

func (e *Error) Error() string {
	status := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	switch {
	case e.Code == "":
		return fmt.Sprintf("%s %s: %s: %s", e.Method, e.Path, status, e.Body)
	case e.Field != "":
		return fmt.Sprintf("%s (%s): %s: %s", e.Code, status, e.Field, e.Message)
	default:
		return fmt.Sprintf("%s (%s): %s", e.Code, status, e.Message)
	}
}

// JSON sends in (when non-nil) as JSON and decodes a JSON answer into out
// (when non-nil).
func (c *Client) JSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.Do(ctx, method, path, body, "application/json", out)
}

// Do sends body with its content type and decodes a JSON answer into out
// (when non-nil). An answer outside 2xx is an *Error; a failure to reach the
// API is returned as the HTTP client reports it.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil && contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return answerError(method, path, resp.StatusCode, b)
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func answerError(method, path string, status int, b []byte) *Error {
	e := &Error{Method: method, Path: path, Status: status}
	var eb apitype.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message, e.Field = eb.Error.Code, eb.Error.Message, eb.Error.Field
		return e
	}
	if len(b) > 200 {
		b = b[:200]
	}
	e.Body = strings.TrimSpace(string(b))
	return e
}
