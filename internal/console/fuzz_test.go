package console

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzLogin feeds arbitrary login bodies to the console: every one gets a
// redirect (the right credential), 400 or 401, and only the right
// credential gets a session.
func FuzzLogin(f *testing.F) {
	f.Add([]byte("credential="+secret), "application/x-www-form-urlencoded")
	f.Add([]byte("credential=%zz"), "application/x-www-form-urlencoded")
	f.Add([]byte("credential=a&credential="+secret), "application/x-www-form-urlencoded")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"credential\"\r\n\r\nx\r\n--b--"), "multipart/form-data; boundary=b")
	c := New(Config{Kind: KindSite, Title: "fuzz", Check: func(_ context.Context, cred string) bool { return cred == secret }})
	mux := http.NewServeMux()
	c.Register(mux)
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest("POST", "/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusSeeOther:
			if strings.TrimSpace(req.PostForm.Get("credential")) != secret {
				t.Fatalf("logged in with %q", req.PostForm.Get("credential"))
			}
		case http.StatusBadRequest, http.StatusUnauthorized:
			if len(rec.Result().Cookies()) != 0 {
				t.Fatalf("refused login set cookies")
			}
		default:
			t.Fatalf("status %d for %q (%s)", rec.Code, body, contentType)
		}
	})
}
