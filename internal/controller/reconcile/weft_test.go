package reconcile

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/resource"
	"weft.dev/weft/test/envtest"
)

// fakeSite implements a weft site's admin API contract for listeners and
// connectors: PUT/DELETE /v1/{coll}/{name}, GET /v1/{coll} -> {"items":[...]},
// bearer authentication, errors as {"error":{"code","message"}}.
type fakeSite struct {
	token string
	mu    sync.Mutex
	items map[string]map[string]map[string]any // collection -> name -> object
}

func newFakeSite(t *testing.T, token string) (*fakeSite, *httptest.Server) {
	s := &fakeSite{token: token, items: map[string]map[string]map[string]any{"listeners": {}, "connectors": {}}}
	mux := http.NewServeMux()
	for _, coll := range []string{"listeners", "connectors"} {
		mux.HandleFunc("GET /v1/"+coll, s.auth(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			items := []map[string]any{}
			for _, o := range s.items[coll] {
				items = append(items, o)
			}
			json.NewEncoder(w).Encode(map[string]any{"items": items})
		}))
		mux.HandleFunc("PUT /v1/"+coll+"/{name}", s.auth(func(w http.ResponseWriter, r *http.Request) {
			var o map[string]any
			if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
				apiErr(w, http.StatusBadRequest, "BadRequest", err.Error())
				return
			}
			if name, _, _ := unstructured.NestedString(o, "metadata", "name"); name != r.PathValue("name") {
				apiErr(w, http.StatusBadRequest, "BadRequest", "name mismatch")
				return
			}
			s.mu.Lock()
			s.items[coll][r.PathValue("name")] = o
			s.mu.Unlock()
			json.NewEncoder(w).Encode(o)
		}))
		mux.HandleFunc("DELETE /v1/"+coll+"/{name}", s.auth(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if _, ok := s.items[coll][r.PathValue("name")]; !ok {
				apiErr(w, http.StatusNotFound, "NotFound", "no such "+coll)
				return
			}
			delete(s.items[coll], r.PathValue("name"))
			w.WriteHeader(http.StatusNoContent)
		}))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv
}

func apiErr(w http.ResponseWriter, status int, code, msg string) {
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *fakeSite) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+s.token {
			apiErr(w, http.StatusUnauthorized, "Unauthorized", "missing or wrong bearer token")
			return
		}
		h(w, r)
	}
}

func (s *fakeSite) names(coll string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n []string
	for name := range s.items[coll] {
		n = append(n, name)
	}
	slices.Sort(n)
	return strings.Join(n, ",")
}

func weftObj(kind, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": resource.APIVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "labels": map[string]any{ManagedByLabel: ManagedByValue}},
		"spec":     spec,
	}}
}

func TestWeftBackend(t *testing.T) {
	site, srv := newFakeSite(t, "s3cret")
	site.items["listeners"]["by-hand"] = map[string]any{"apiVersion": resource.APIVersion, "kind": "Listener", "metadata": map[string]any{"name": "by-hand"}}
	h := newHarness(t)
	target := Target{Name: "p1/east/weft", Kind: "weft", WeftAdmin: srv.URL + "/", WeftToken: "s3cret"}
	l1 := weftObj("Listener", "orders", map[string]any{"address": "orders", "port": int64(8080)})
	l2 := weftObj("Listener", "web", map[string]any{"address": "web", "port": int64(80)})
	c1 := weftObj("Connector", "orders", map[string]any{"address": "orders", "target": "127.0.0.1:8080"})
	h.src.set(Desired{Target: target, Objects: []*unstructured.Unstructured{l1, l2, c1}})
	h.e.Trigger()
	h.drain(t)
	if got := site.names("listeners") + " " + site.names("connectors"); got != "by-hand,orders,web orders" {
		t.Fatalf("site holds %s", got)
	}
	if s := h.sink.last()["orders"]; s.State != StateApplied || s.Target != target.Name {
		t.Errorf("status = %+v", s)
	}

	h.src.set(Desired{Target: target, Objects: []*unstructured.Unstructured{l1}})
	h.e.Trigger()
	h.drain(t)
	if got := site.names("listeners") + " " + site.names("connectors"); got != "by-hand,orders " {
		t.Fatalf("after pruning the site holds %q", got)
	}
	if got := fmt.Sprint(h.sink.states("web")); got != "[pending applied deleted]" {
		t.Errorf("web statuses %s", got)
	}

	// Errors from the site reach the status with the API's message.
	b, err := newWeftBackend(Target{Name: "x", WeftAdmin: srv.URL, WeftToken: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Apply(t.Context(), l1)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "wrong bearer token") {
		t.Errorf("wrong token: err = %v", err)
	}
	if err := b.Apply(t.Context(), &unstructured.Unstructured{Object: map[string]any{"kind": "Link", "metadata": map[string]any{"name": "x"}}}); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("unsupported kind: err = %v", err)
	}
	if _, err := newWeftBackend(Target{Name: "x", WeftAdmin: "not a url"}); err == nil {
		t.Error("bad admin URL accepted")
	}
}

// TestWeftBackendRealSite runs the same contract against a real weft site.
func TestWeftBackendRealSite(t *testing.T) {
	admin, token := envtest.StartWeftSite(t, "east")
	target := Target{Name: "p1/east/weft", Kind: "weft", WeftAdmin: admin, WeftToken: token}
	h := newHarness(t)
	l := weftObj("Listener", "orders", map[string]any{"address": "orders", "port": int64(0)})
	c := weftObj("Connector", "orders", map[string]any{"address": "orders", "target": "127.0.0.1:9"})
	h.src.set(Desired{Target: target, Objects: []*unstructured.Unstructured{l, c}})
	h.e.Trigger()
	h.drain(t)
	b, err := newWeftBackend(target)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := b.Managed(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 {
		t.Fatalf("site holds managed %v, statuses %+v", refs, h.sink.last())
	}

	h.src.set(Desired{Target: target, Objects: []*unstructured.Unstructured{c}})
	h.e.Trigger()
	h.drain(t)
	refs, err = b.Managed(t.Context(), nil)
	if err != nil || len(refs) != 1 || refs[0].Kind != "Connector" {
		t.Fatalf("after pruning the listener the site holds %v, %v", refs, err)
	}
	h.sink.mu.Lock()
	lastListener := h.sink.all[len(h.sink.all)-1]
	h.sink.mu.Unlock()
	if lastListener.Ref.Kind != "Listener" || lastListener.State != StateDeleted {
		t.Errorf("last status = %+v, want the listener's deletion", lastListener)
	}
}
