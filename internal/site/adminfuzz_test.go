package site

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/resource"
)

// adminFuzzRoutes are the admin API's calls FuzzAdminAPI drives: those
// whose effects stay inside the site. Listeners bind ports, connectors
// probe their targets, links and bridges dial what their bodies name, and
// network attachments make devices in namespaces: those bodies are
// FuzzDecodeObject's and package resource's FuzzDecode's, and an apply of
// any of them is skipped (outsideSite).
var adminFuzzRoutes = []struct{ method, path string }{
	{"PUT", "/v1/topics/"}, {"PUT", "/v1/queues/"}, {"DELETE", "/v1/topics/"}, {"DELETE", "/v1/queues/"},
	{"PUT", "/v1/subscriptions/"}, {"DELETE", "/v1/subscriptions/"},
	{"PUT", "/v1/exports/"}, {"PUT", "/v1/imports/"}, {"DELETE", "/v1/exports/"}, {"DELETE", "/v1/imports/"},
	{"PUT", "/v1/networks/"}, {"DELETE", "/v1/networks/"},
	{"POST", "/v1/tokens"}, {"DELETE", "/v1/tokens/"},
	{"POST", "/v1/event-credentials"}, {"DELETE", "/v1/event-credentials/"},
	{"POST", "/v1/revocations"}, {"PUT", "/v1/organisation"}, {"DELETE", "/v1/organisation"},
	{"POST", "/v1/site/rotate-key"}, {"DELETE", "/v1/links/"},
	{"GET", "/v1/status"}, {"GET", "/v1/events"}, {"POST", "/v1/apply"},
}

// outsideSite reports whether body is an apply whose objects reach outside
// the site.
func outsideSite(body []byte) bool {
	objs, err := resource.Decode(bytes.NewReader(body))
	return err == nil && slices.ContainsFunc(objs, func(o resource.Decoded) bool {
		switch o.Object.(type) {
		case *resource.Listener, *resource.Connector, *resource.Link, *resource.AccessToken, *resource.Bridge, *resource.NetworkAttachment:
			return true
		}
		return false
	})
}

// FuzzAdminAPI drives a running site's admin API with any name and body on
// the calls of adminFuzzRoutes: every answer is a success or a 4xx in the
// API's error shape (never a 5xx, never a broken connection, which is what a
// handler's panic gives), and the site goes on serving.
func FuzzAdminAPI(f *testing.F) {
	s := startSiteWith(f, Options{Name: "a", DataDir: f.TempDir()})
	seeds := map[string]string{
		"/v1/topics/":           `{"spec":{"delivery":"persisted","retention":"24h"}}`,
		"/v1/queues/":           `{}`,
		"/v1/subscriptions/":    `{"spec":{"topic":"orders.>","sink":"http://127.0.0.1:9/","retry":5,"backoffDelay":"1s"}}`,
		"/v1/exports/":          `{"spec":{"address":"orders.>","organisations":["7d793037a0760186574b0282f2f435e7"]}}`,
		"/v1/imports/":          `{"spec":{"address":"inventory","organisations":["00000000000000000000000000000000"]}}`,
		"/v1/networks/":         `{"cidr":"100.100.0.0/16","mtu":1400}`,
		"/v1/tokens":            `{"expires":"15m","uses":3}`,
		"/v1/event-credentials": `{"name":"c","publish":["orders.>"],"subscribe":["x"],"expires":"1h"}`,
		"/v1/revocations":       `{"statement":"x","reason":"y"}`,
		"/v1/organisation":      `{"certificate":"-----BEGIN X-----\nAA==\n-----END X-----\n"}`,
		"/v1/site/rotate-key":   `{"revokePrevious":true}`,
	}
	for i, rt := range adminFuzzRoutes {
		f.Add(uint8(i), "orders", []byte(seeds[rt.path]))
	}
	client := &http.Client{}
	base := "http://" + s.AdminAddr().String()
	f.Fuzz(func(t *testing.T, pick uint8, name string, body []byte) {
		rt := adminFuzzRoutes[int(pick)%len(adminFuzzRoutes)]
		if rt.path == "/v1/apply" && outsideSite(body) {
			return
		}
		path := rt.path
		if strings.HasSuffix(path, "/") {
			path += url.PathEscape(name)
		}
		req, err := http.NewRequest(rt.method, base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+s.AdminToken())
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v (did the handler panic?)", rt.method, path, err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: reading the answer: %v", rt.method, path, err)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, path, body, resp.StatusCode, raw)
		}
		if resp.StatusCode >= 400 {
			var e apitype.ErrorBody
			if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s %s: %d answer not in the API's error shape: %s", rt.method, path, resp.StatusCode, raw)
			}
		}
	})
}
