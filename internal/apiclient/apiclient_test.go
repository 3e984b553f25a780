package apiclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"Unauthorized","message":"no token"}}`)
			return
		}
		switch r.URL.Path {
		case "/echo":
			if r.Header.Get("Content-Type") != "application/json" {
				w.WriteHeader(http.StatusUnsupportedMediaType)
				return
			}
			io.Copy(w, r.Body)
		case "/field":
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"code":"Invalid","message":"must be positive","field":"spec.port"}}`)
		case "/plain":
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "upstream "+strings.Repeat("x", 300))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := &Client{Base: srv.URL, Token: "tok"}

	var out map[string]int
	if err := c.JSON(ctx, "POST", "/echo", map[string]int{"a": 1}, &out); err != nil || out["a"] != 1 {
		t.Errorf("echo: %v, %v", out, err)
	}
	if err := c.JSON(ctx, "DELETE", "/empty", nil, &out); err != nil {
		t.Errorf("204 with out: %v", err)
	}
	for _, tc := range []struct {
		client       *Client
		path, want   string
		status       int
		code, fields string
	}{
		{c, "/field", "Invalid (400 Bad Request): spec.port: must be positive", 400, "Invalid", "spec.port"},
		{c, "/plain", "GET /plain: 502 Bad Gateway: upstream xxx", 502, "", ""},
		{&Client{Base: srv.URL, Token: "bad"}, "/echo", "Unauthorized (401 Unauthorized): no token", 401, "Unauthorized", ""},
	} {
		err := tc.client.JSON(ctx, "GET", tc.path, nil, nil)
		var e *Error
		if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code || e.Field != tc.fields || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %#v (%v)", tc.path, e, err)
		}
		if e != nil && len(e.Body) > 200 {
			t.Errorf("%s: body kept in full (%d bytes)", tc.path, len(e.Body))
		}
	}
}
