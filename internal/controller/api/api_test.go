package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"weft.dev/weft/internal/controller/api"
	_ "weft.dev/weft/internal/controller/render/externaldns"
	_ "weft.dev/weft/internal/controller/render/istio"
	_ "weft.dev/weft/internal/controller/render/weft"
	"weft.dev/weft/internal/controller/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	t        testing.TB
	srv      *httptest.Server
	st       *store.Store
	token    string
	triggers int
}

func newEnv(t testing.TB) *env {
	dsn := os.Getenv("WEFT_TEST_DSN")
	if dsn == "" {
		dsn = "sqlite://" + filepath.Join(t.TempDir(), "c.db")
	}
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("WEFT_TEST_DSN") != "" {
		st.Reset(context.Background())
	}
	e := &env{t: t, st: st, token: "admin-token"}
	if err := st.AddToken(context.Background(), e.token, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(api.New(st, func() { e.triggers++ }, nil))
	t.Cleanup(func() { e.srv.Close(); st.Close() })
	return e
}

// do sends a request and checks its status, returning the decoded body.
func (e *env) do(method, path, body string, want int) map[string]any {
	e.t.Helper()
	return e.doAs(e.token, method, path, body, want)
}

func (e *env) doAs(token, method, path, body string, want int) map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	out := map[string]any{}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return out
}

const g1 = "/v2/projects/p1/apps/shop/v1/traffic-groups/g1"

// issueSequence is issue 5's request sequence, exactly as written there.
func issueSequence(e *env) {
	e.do("POST", "/v2/projects", `{"metadata":{"name":"p1"}}`, 201)
	e.do("POST", "/v2/projects/p1/clusters", `{"metadata":{"name":"east","labels":{"region":"us-east"}},"spec":{"mesh":"istio","locality":"us-east/zone1","eastWestGateway":{"address":"192.0.2.10","port":15443}}}`, 201)
	e.do("POST", "/v2/projects/p1/clusters", `{"metadata":{"name":"west","labels":{"region":"us-west"}},"spec":{"mesh":"istio","locality":"us-west/zone1","eastWestGateway":{"address":"192.0.2.20","port":15443}}}`, 201)
	e.do("POST", "/v2/projects/p1/apps", `{"metadata":{"name":"shop"},"spec":{"version":"v1","services":[
                                        {"name":"orders","namespace":"shop","port":8080,"protocol":"HTTP","serviceAccount":"orders","clusters":["east","west"]},
                                        {"name":"web","namespace":"shop","port":80,"protocol":"HTTP","serviceAccount":"web","clusters":["west"]}]}}`, 201)
	e.do("POST", "/v2/projects/p1/apps/shop/v1/traffic-groups", `{"metadata":{"name":"g1"}}`, 201)
	e.do("POST", "/v2/projects/p1/apps/shop/v1/traffic-groups/g1/intents", `{"metadata":{"name":"web-orders"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],
       "protocol":"HTTP","port":8080,"mutualTLS":true,"circuitBreaking":{"maxConnections":1,"http1MaxPendingRequests":1,"consecutiveErrors":1,"interval":"1s","baseEjectionTime":"1m","maxEjectionPercent":100}}}`, 201)
}

// objects returns the plan's objects for cluster, by kind/name.
func objects(t *testing.T, plan map[string]any, cluster string) map[string]map[string]any {
	t.Helper()
	c, ok := plan["clusters"].(map[string]any)[cluster].(map[string]any)
	if !ok {
		t.Fatalf("plan has no cluster %s: %v", cluster, plan)
	}
	out := map[string]map[string]any{}
	for _, o := range c["objects"].([]any) {
		ch := o.(map[string]any)
		obj, _ := ch["object"].(map[string]any)
		ref := ch["ref"].(map[string]any)
		out[ref["kind"].(string)+"/"+ref["name"].(string)] = map[string]any{"action": ch["action"], "object": obj, "diff": ch["diff"]}
	}
	return out
}

func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestIssueSequence(t *testing.T) {
	e := newEnv(t)
	issueSequence(e)
	plan := e.do("GET", g1+"/plan", "", 200)
	west, east := objects(t, plan, "west"), objects(t, plan, "east")
	se := west["ServiceEntry/web-orders"]
	if se == nil || se["action"] != "create" {
		t.Fatalf("west objects: %v", west)
	}
	ep := get(se["object"], "spec", "endpoints", 0)
	if get(ep, "address") != "192.0.2.10" || get(ep, "ports", "http-8080") != float64(15443) {
		t.Errorf("west ServiceEntry endpoint = %v, want 192.0.2.10:15443", ep)
	}
	tp := get(west["DestinationRule/web-orders"]["object"], "spec", "trafficPolicy")
	if get(tp, "connectionPool", "tcp", "maxConnections") != float64(1) || get(tp, "connectionPool", "http", "http1MaxPendingRequests") != float64(1) ||
		get(tp, "outlierDetection", "consecutive5xxErrors") != float64(1) || get(tp, "outlierDetection", "interval") != "1s" ||
		get(tp, "outlierDetection", "maxEjectionPercent") != float64(100) || get(tp, "tls", "mode") != "ISTIO_MUTUAL" ||
		get(tp, "loadBalancer", "localityLbSetting", "failover", 0, "to") != "us-east" {
		t.Errorf("west DestinationRule trafficPolicy = %v", tp)
	}
	gw := east["Gateway/weft-cross-network"]
	if gw == nil || get(gw["object"], "spec", "servers", 0, "tls", "mode") != "AUTO_PASSTHROUGH" {
		t.Errorf("east objects: %v", east)
	}

	// Apply releases the plan; status is pending until the engine reports.
	before := e.triggers
	res := e.do("POST", g1+"/apply", "", 202)
	if res["generation"] != float64(1) || e.triggers != before+1 {
		t.Fatalf("apply = %v, triggers %d", res, e.triggers-before)
	}
	status := e.do("GET", g1+"/status", "", 200)
	if status["state"] != "pending" || get(status, "clusters", "west", "resources", 0, "state") != "pending" {
		t.Fatalf("status after apply = %v", status)
	}
	// The engine reports every object applied, one failed.
	rels, _ := e.st.Releases(context.Background(), "p1/shop/v1/g1")
	failed := ""
	for name, st := range rels["p1/shop/v1/g1"].States {
		for i, o := range st.Objects {
			s := store.Status{Target: name, Ref: o.Ref, State: store.StateApplied, Hash: o.Hash}
			if name == "p1/east/kubernetes" && i == 0 {
				s.State, s.Error, s.Attempts, failed = store.StateFailed, "connection refused", 3, o.Ref.Name
			}
			if err := e.st.RecordStatus(context.Background(), s); err != nil {
				t.Fatal(err)
			}
		}
	}
	status = e.do("GET", g1+"/status", "", 200)
	if status["state"] != "failed" || get(status, "clusters", "west", "state") != "applied" || get(status, "clusters", "east", "state") != "failed" {
		t.Fatalf("status = %v", status)
	}
	r0 := get(status, "clusters", "east", "resources", 0)
	if get(r0, "name") != failed || get(r0, "error") != "connection refused" || get(r0, "attempts") != float64(3) || get(r0, "at") == nil {
		t.Errorf("failed resource = %v", r0)
	}

	// Now the plan is a diff against what was applied: unchanged, then an update.
	plan = e.do("GET", g1+"/plan", "", 200)
	if a := objects(t, plan, "west")["DestinationRule/web-orders"]["action"]; a != "unchanged" {
		t.Errorf("after apply, west DestinationRule is %v", a)
	}
	in := e.do("GET", g1+"/intents/web-orders", "", 200)
	spec := in["spec"].(map[string]any)
	spec["circuitBreaking"].(map[string]any)["maxConnections"] = 5
	body, _ := json.Marshal(in)
	e.do("PUT", g1+"/intents/web-orders", string(body), 200)
	plan = e.do("GET", g1+"/plan", "", 200)
	dr := objects(t, plan, "west")["DestinationRule/web-orders"]
	if dr["action"] != "update" || get(dr["diff"], 0, "path") != "spec.trafficPolicy.connectionPool.tcp.maxConnections" ||
		get(dr["diff"], 0, "old") != float64(1) || get(dr["diff"], 0, "new") != float64(5) {
		t.Errorf("update diff = %v", dr)
	}

	// An intracluster intent allows web's principal.
	e.do("POST", g1+"/intents", `{"metadata":{"name":"web-orders-local"},"spec":{"type":"intracluster","server":"orders","clients":[{"service":"web"}]}}`, 201)
	plan = e.do("GET", g1+"/plan", "", 200)
	ap := objects(t, plan, "west")["AuthorizationPolicy/web-orders-local"]
	if get(ap["object"], "spec", "rules", 0, "from", 0, "source", "principals", 0) != "cluster.local/ns/shop/sa/web" {
		t.Errorf("intracluster AuthorizationPolicy = %v", ap)
	}

	// Deleting the intercluster intent plans deletes of what it placed.
	e.do("DELETE", g1+"/intents/web-orders", "", 204)
	plan = e.do("GET", g1+"/plan", "", 200)
	if a := objects(t, plan, "west")["ServiceEntry/web-orders"]["action"]; a != "delete" {
		t.Errorf("after deleting the intent, west ServiceEntry is %v", a)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t)
	issueSequence(e)
	// 400 with the field path.
	for _, tc := range []struct{ path, body, field string }{
		{"/v2/projects/p1/clusters", `{"metadata":{"name":"Bad_Name"}}`, "metadata.name"},
		{"/v2/projects/p1/clusters", `{"metadata":{"name":"c"},"spec":{"eastWestGateway":{"address":"192.0.2.1","port":70000}}}`, "spec.eastWestGateway.port"},
		{g1 + "/intents", `{"metadata":{"name":"i"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],"port":"80"}}`, "spec.port"},
		{g1 + "/intents", `{"metadata":{"name":"i"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],"prot":"HTTP"}}`, "spec.prot"},
		{g1 + "/intents", `{"metadata":{"name":"i"},"spec":{"type":"teleport"}}`, "spec.type"},
		{g1 + "/intents", `{"metadata":{"name":"i"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],"circuitBreaking":{"interval":"soon"}}}`, "spec.circuitBreaking.interval"},
	} {
		got := e.do("POST", tc.path, tc.body, 400)
		if get(got, "error", "code") != "Invalid" || get(got, "error", "field") != tc.field {
			t.Errorf("POST %s %s: %v, want field %s", tc.path, tc.body, got, tc.field)
		}
	}
	// 401 without or with an unknown token; 403 for a read-only token's writes.
	e.doAs("", "GET", "/v2/projects", "", 401)
	if got := e.doAs("nope", "GET", "/v2/projects", "", 401); get(got, "error", "code") != "Unauthorized" {
		t.Errorf("401 body = %v", got)
	}
	ro := e.do("POST", "/v2/tokens", `{"role":"read-only"}`, 201)["token"].(string)
	e.doAs(ro, "GET", g1+"/plan", "", 200)
	if got := e.doAs(ro, "POST", "/v2/projects", `{"metadata":{"name":"p2"}}`, 403); get(got, "error", "code") != "Forbidden" {
		t.Errorf("403 body = %v", got)
	}
	e.doAs(ro, "POST", g1+"/apply", "", 403)
	// 404 for unknown parents and items.
	if got := e.do("POST", "/v2/projects/nope/clusters", `{"metadata":{"name":"c"}}`, 404); get(got, "error", "code") != "ParentNotFound" {
		t.Errorf("404 body = %v", got)
	}
	e.do("GET", "/v2/projects/nope/clusters", "", 404)
	e.do("POST", "/v2/projects/p1/apps/shop/v2/traffic-groups", `{"metadata":{"name":"g"}}`, 404)
	e.do("GET", g1+"/intents/nope", "", 404)
	e.do("GET", "/v2/projects/p1/apps/shop/v1/traffic-groups/nope/plan", "", 404)
	// 409 for duplicates, stale resourceVersions and parents with children.
	if got := e.do("POST", "/v2/projects/p1/clusters", `{"metadata":{"name":"east"}}`, 409); get(got, "error", "code") != "AlreadyExists" {
		t.Errorf("duplicate: %v", got)
	}
	c := e.do("GET", "/v2/projects/p1/clusters/east", "", 200)
	c["spec"].(map[string]any)["locality"] = "us-east/zone2"
	body, _ := json.Marshal(c)
	e.do("PUT", "/v2/projects/p1/clusters/east", string(body), 200)
	if got := e.do("PUT", "/v2/projects/p1/clusters/east", string(body), 409); get(got, "error", "code") != "Conflict" {
		t.Errorf("stale update: %v", got)
	}
	e.do("DELETE", "/v2/projects/p1/clusters/east?resourceVersion=1", "", 409)
	e.do("DELETE", "/v2/projects/p1", "", 409)
	// 400 when the body names another object than the URL.
	e.do("PUT", "/v2/projects/p1/clusters/west", string(body), 400)
	// 422 when an intent names a service the app lacks.
	e.do("POST", g1+"/intents", `{"metadata":{"name":"ghost"},"spec":{"type":"intercluster","server":"ghost","clients":[{"service":"web"}]}}`, 201)
	if got := e.do("GET", g1+"/plan", "", 422); get(got, "error", "field") != "spec.server" {
		t.Errorf("unresolved: %v", got)
	}
}

func TestOpenAPI(t *testing.T) {
	e := newEnv(t)
	doc := e.doAs("", "GET", "/openapi.json", "", 200)
	if doc["openapi"] != "3.0.3" || get(doc, "paths", "/v2/projects/{project}/apps/{app}/{version}/traffic-groups/{group}/plan", "get") == nil ||
		get(doc, "components", "schemas", "Intent", "properties", "spec", "properties", "circuitBreaking") == nil {
		t.Fatalf("openapi document lacks paths or schemas")
	}
}
