package api_test

import (
	"net/http"
	"testing"
)

// /version needs no token; paths the API does not serve answer in the one
// error shape.
func TestVersionAndUnknownPaths(t *testing.T) {
	e := newEnv(t)
	if v := e.doAs("", "GET", "/version", "", http.StatusOK); v["go"] == "" || v["module"] == "" {
		t.Errorf("/version: %v", v)
	}
	for _, p := range []string{"/v3/things", "/v2/projects/p/nothing"} {
		body := e.do("GET", p, "", http.StatusNotFound)
		if errBody, _ := body["error"].(map[string]any); errBody["code"] != "NotFound" || errBody["message"] == "" {
			t.Errorf("GET %s: %v", p, body)
		}
	}
}
