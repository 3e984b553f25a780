package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"weft.dev/weft/internal/controller/api"
	"weft.dev/weft/internal/controller/model"
)

// route is one API call that takes a body of at most limit bytes.
type route struct {
	method, path string
	limit        int
}

var (
	objectRoutes = []route{
		{"POST", "/v2/projects", model.MaxBody},
		{"POST", "/v2/projects/p1/clusters", model.MaxBody},
		{"POST", "/v2/projects/p1/apps", model.MaxBody},
		{"POST", "/v2/projects/p1/apps/shop/v1/traffic-groups", model.MaxBody},
		{"POST", g1 + "/intents", model.MaxBody},
		{"PUT", "/v2/projects/p1", model.MaxBody},
		{"PUT", "/v2/projects/p1/clusters/east", model.MaxBody},
		{"PUT", "/v2/projects/p1/apps/shop/v1", model.MaxBody},
		{"PUT", g1, model.MaxBody},
		{"PUT", g1 + "/intents/web-orders", model.MaxBody},
	}
	tokenRoutes = []route{{"POST", "/v2/tokens", api.MaxSmallBody}}
	applyRoutes = []route{{"POST", g1 + "/apply", api.MaxSmallBody}}
)

// errorCodes are the codes of errorTable (errors.go), and Internal.
var errorCodes = []string{"Unauthorized", "Forbidden", "TooLarge", "Invalid", "ParentNotFound", "NotFound",
	"AlreadyExists", "Conflict", "HasChildren", "Unresolved", "ConflictingObjects", "Internal"}

// checkAnswer fails unless an answer is a success or a 4xx in the API's
// error shape: a 5xx means the server, not the input, is at fault.
func checkAnswer(t testing.TB, rt route, body []byte, status int, answer []byte) *api.ErrorBody {
	t.Helper()
	if status < 400 {
		return nil
	}
	var eb api.ErrorBody
	if err := json.Unmarshal(answer, &eb); err != nil || eb.Error.Message == "" || !slices.Contains(errorCodes, eb.Error.Code) {
		t.Fatalf("%s %s: %d with %q, not the API's error shape (%v)", rt.method, rt.path, status, answer, err)
	}
	if status >= 500 {
		t.Fatalf("%s %s with body %q: %d %+v, want a 4xx for bad input", rt.method, rt.path, body, status, eb.Error)
	}
	return &eb
}

// TestBadInput sends every body-taking call input it must refuse, over real
// TCP, and checks for a 4xx in the API's error shape, after which the server
// still answers, and that none of it changed anything.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	issueSequence(e)
	tooLarge := `{"metadata":{"name":"big"},"spec":{"description":"` + strings.Repeat("a", model.MaxBody) + `"}}`
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		field      string // checked on object routes only; "-" for none
	}{
		{"over the size limit", tooLarge, http.StatusRequestEntityTooLarge, "TooLarge", "-"},
		{"100,000 [", strings.Repeat("[", 100_000), http.StatusBadRequest, "Invalid", "-"},
		{"100,000 nested objects", strings.Repeat(`{"metadata":`, 100_000), http.StatusBadRequest, "Invalid", "-"},
		{"unknown field", `{"metadata":{"name":"x"},"bogus":1}`, http.StatusBadRequest, "Invalid", "bogus"},
		{"unknown nested field", `{"metadata":{"name":"x","owner":"me"}}`, http.StatusBadRequest, "Invalid", "metadata.owner"},
		{"wrong type", `{"metadata":{"name":7}}`, http.StatusBadRequest, "Invalid", "metadata.name"},
		{"not an object", `["metadata"]`, http.StatusBadRequest, "Invalid", "-"},
		{"trailing garbage", `{"metadata":{"name":"x"}} garbage`, http.StatusBadRequest, "Invalid", "-"},
		{"trailing bracket", `{"metadata":{"name":"x"}}]`, http.StatusBadRequest, "Invalid", "-"},
		{"trailing brace", `{"metadata":{"name":"x"}}}`, http.StatusBadRequest, "Invalid", "-"},
		{"two objects", `{"metadata":{"name":"x"}}{"metadata":{"name":"y"}}`, http.StatusBadRequest, "Invalid", "-"},
		{"truncated", `{"metadata":{"name":"x"`, http.StatusBadRequest, "Invalid", "-"},
		{"invalid UTF-8", "{\"metadata\":{\"name\":\"\xff\xfe\"}}", http.StatusBadRequest, "Invalid", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, rt := range slices.Concat(objectRoutes, tokenRoutes, applyRoutes) {
				req, _ := http.NewRequest(rt.method, e.srv.URL+rt.path, strings.NewReader(tc.body))
				req.Header.Set("Authorization", "Bearer "+e.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", rt.method, rt.path, err)
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				eb := checkAnswer(t, rt, []byte(tc.body), resp.StatusCode, answer)
				status, code := tc.status, tc.code
				if len(tc.body) > rt.limit {
					// Refused for its size before it is parsed.
					status, code = http.StatusRequestEntityTooLarge, "TooLarge"
				}
				if resp.StatusCode != status || eb.Error.Code != code {
					t.Errorf("%s %s: %d %s, want %d %s: %s", rt.method, rt.path, resp.StatusCode, eb.Error.Code, status, code, answer)
				}
				if tc.field != "-" && slices.Contains(objectRoutes, rt) && eb.Error.Field != tc.field {
					t.Errorf("%s %s: field %q, want %q: %s", rt.method, rt.path, eb.Error.Field, tc.field, answer)
				}
				// The server is still up and serves a normal request.
				e.do("GET", "/v2/projects/p1", "", http.StatusOK)
			}
		})
	}
	if got := e.do("GET", "/v2/projects", "", http.StatusOK)["items"].([]any); len(got) != 1 {
		t.Errorf("projects after bad input: %v, want p1 only", got)
	}
	if got := e.do("GET", g1+"/status", "", http.StatusOK)["state"]; got != "unapplied" {
		t.Errorf("group state after bad apply bodies: %v, want unapplied", got)
	}
	if got := e.do("GET", "/v2/projects/p1", "", http.StatusOK)["metadata"].(map[string]any)["resourceVersion"]; got != "1" {
		t.Errorf("project p1 at resourceVersion %v after bad updates, want 1", got)
	}
	// What apply does take: nothing, or {}.
	e.do("POST", g1+"/apply", "", http.StatusAccepted)
	e.do("POST", g1+"/apply", " {} ", http.StatusAccepted)
}

// fuzzRoutes sends the fuzzer's bodies to routes (the first input byte picks
// one) straight into the handler, and checks that each is answered with a
// success or a 4xx in the API's error shape.
func fuzzRoutes(f *testing.F, routes []route, seeds ...string) {
	e := newEnv(f)
	issueSequence(e)
	h := e.srv.Config.Handler
	for i := range routes {
		for _, s := range append(seeds, "", "{}", "null", `{"metadata":{"name":"x"}}]`, strings.Repeat("[", 10_001)) {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, pick uint8, body []byte) {
		rt := routes[int(pick)%len(routes)]
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+e.token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, rt, body, rec.Code, rec.Body.Bytes())
	})
}

// FuzzObjectBody covers the create and replace calls of every kind of object.
func FuzzObjectBody(f *testing.F) {
	fuzzRoutes(f, objectRoutes,
		`{"metadata":{"name":"p1"},"spec":{"description":"d"}}`,
		`{"metadata":{"name":"east","labels":{"region":"us-east"}},"spec":{"mesh":"istio","locality":"us-east/zone1","eastWestGateway":{"address":"192.0.2.10","port":15443}}}`,
		`{"metadata":{"name":"shop"},"spec":{"version":"v1","services":[{"name":"orders","namespace":"shop","port":8080,"protocol":"HTTP","clusters":["east","west"]},{"name":"web","namespace":"shop","port":80,"clusters":["west"]}]}}`,
		`{"metadata":{"name":"g1"}}`,
		`{"metadata":{"name":"web-orders"},"spec":{"type":"intercluster","server":"orders","clients":[{"service":"web"}],"protocol":"HTTP","port":8080}}`,
		`{"metadata":{"name":"web-orders","resourceVersion":"1"},"spec":{"type":"intracluster","server":"orders","clients":[{"service":"web"}]}}`,
		`{"metadata":{"name":"o"},"spec":{"type":"external-outbound","server":"web","clients":[{"fqdn":"api.example.com","port":443}],"protocol":"TLS"}}`,
		`{"metadata":{"name":"i"},"spec":{"type":"external-inbound","server":"orders","externalName":"o.example.com"}}`,
		`{"metadata":{"name":"d"},"spec":{"type":"dns-provider","provider":"rfc2136","dnsServer":"127.0.0.1:53","zone":"example.com.","tsigKeyName":"k","tsigSecret":"c2VjcmV0"}}`)
}

// FuzzTokenBody covers POST /v2/tokens.
func FuzzTokenBody(f *testing.F) {
	fuzzRoutes(f, tokenRoutes, `{"role":"admin"}`, `{"role":"read-only"}`, `{"role":"root"}`, `{"role":1}`)
}

// FuzzApplyBody covers POST .../apply, which takes no body.
func FuzzApplyBody(f *testing.F) {
	fuzzRoutes(f, applyRoutes, ` {} `, `{"dryRun":true}`, `[]`)
}
