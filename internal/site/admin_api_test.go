package site

import (
	"encoding/json"
	"net/http"
	"testing"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/resource"
)

// Paths the admin API does not serve answer in its error shape, and
// /version needs no credential.
func TestAdminAPIUnknownPathAndVersion(t *testing.T) {
	s := startSite(t, "a")
	if code, errCode := s.api("GET", "/v1/nothing", nil, nil); code != http.StatusNotFound || errCode != apitype.CodeNotFound {
		t.Errorf("unknown path: %d %s", code, errCode)
	}
	resp, err := http.Get("http://" + s.AdminAddr().String() + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v apitype.Version
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 || v.Go == "" {
		t.Errorf("/version: %d %+v %v", resp.StatusCode, v, err)
	}
}

// Uses 0 is refused with the field at fault, not taken for the default.
func TestTokenUsesZero(t *testing.T) {
	s := startSite(t, "a")
	if code, errCode := s.api("POST", "/v1/tokens", `{"uses":0}`, nil); code != http.StatusBadRequest || errCode != apitype.CodeInvalid {
		t.Errorf("uses 0: %d %s", code, errCode)
	}
	var tok resource.AccessToken
	if code, _ := s.api("POST", "/v1/tokens", `{}`, &tok); code != 200 || tok.Spec.Uses != 1 {
		t.Errorf("no uses: %d, %d uses", code, tok.Spec.Uses)
	}
}

func TestTokenListAndRevoke(t *testing.T) {
	s := startSite(t, "a")
	var t1, t2 resource.AccessToken
	s.api("POST", "/v1/tokens", `{"uses":2}`, &t1)
	s.api("POST", "/v1/tokens", `{}`, &t2)
	var list apitype.List[apitype.TokenView]
	s.api("GET", "/v1/tokens", nil, &list)
	if len(list.Items) != 2 || list.Items[0].State != apitype.TokenActive {
		t.Fatalf("tokens: %+v", list.Items)
	}
	// By name, as `token list` shows it, and by ID.
	if code, _ := s.api("DELETE", "/v1/tokens/"+t1.Name, nil, nil); code != http.StatusNoContent {
		t.Errorf("revoke by name: %d", code)
	}
	if code, _ := s.api("DELETE", "/v1/tokens/"+t2.Spec.ID, nil, nil); code != http.StatusNoContent {
		t.Errorf("revoke by id: %d", code)
	}
	if code, errCode := s.api("DELETE", "/v1/tokens/"+t2.Spec.ID, nil, nil); code != http.StatusNotFound || errCode != apitype.CodeNotFound {
		t.Errorf("revoke again: %d %s", code, errCode)
	}
	s.api("GET", "/v1/tokens", nil, &list)
	if len(list.Items) != 0 {
		t.Errorf("tokens after revoking both: %+v", list.Items)
	}
}

// A name is a topic or a queue, never both.
func TestTopicAndQueueShareOneNamespace(t *testing.T) {
	s := startSite(t, "a")
	if code, _ := s.api("PUT", "/v1/queues/jobs", `{}`, nil); code != 200 {
		t.Fatalf("queue: %d", code)
	}
	if code, errCode := s.api("PUT", "/v1/topics/jobs", `{}`, nil); code != http.StatusConflict || errCode != apitype.CodeNameInUse {
		t.Errorf("topic named like a queue: %d %s", code, errCode)
	}
	if code, _ := s.api("DELETE", "/v1/queues/jobs", nil, nil); code != http.StatusNoContent {
		t.Errorf("delete queue: %d", code)
	}
	if code, _ := s.api("PUT", "/v1/topics/jobs", `{}`, nil); code != 200 {
		t.Errorf("topic once the queue is gone: %d", code)
	}
	if code, errCode := s.api("DELETE", "/v1/queues/jobs", nil, nil); code != http.StatusNotFound || errCode != apitype.CodeNotFound {
		t.Errorf("delete a queue that is not: %d %s", code, errCode)
	}
}

// Apply reports each document; one that fails does not stop the rest, and
// a token of the site itself is refused before anything is dialed.
func TestApplyEachDocument(t *testing.T) {
	s := startSite(t, "a")
	var own resource.AccessToken
	s.api("POST", "/v1/tokens", `{}`, &own)
	b, _ := json.Marshal(own)
	body := `{"apiVersion":"weft.dev/v1alpha1","kind":"Topic","metadata":{"name":"t"}}
---
` + string(b) + `
---
{"apiVersion":"weft.dev/v1alpha1","kind":"Queue","metadata":{"name":"t"}}
---
{"apiVersion":"weft.dev/v1alpha1","kind":"Queue","metadata":{"name":"q"}}`
	var out apitype.ApplyResponse
	if code, _ := s.api("POST", "/v1/apply", body, &out); code != 200 {
		t.Fatalf("apply: %d", code)
	}
	want := []struct{ kind, result, code string }{
		{"Topic", apitype.ApplyCreated, ""},
		{"Link", apitype.ApplyFailed, apitype.CodeLinkRefused},
		{"Queue", apitype.ApplyFailed, apitype.CodeNameInUse},
		{"Queue", apitype.ApplyCreated, ""},
	}
	if out.Failed != 2 || len(out.Items) != len(want) {
		t.Fatalf("apply: %+v", out)
	}
	for i, w := range want {
		got := out.Items[i]
		code := ""
		if got.Error != nil {
			code = got.Error.Code
		}
		if got.Kind != w.kind || got.Result != w.result || code != w.code {
			t.Errorf("document %d: %+v, want %+v", i+1, got, w)
		}
	}
}
