package api

import (
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/store"
)

// openAPI returns the OpenAPI 3 document. Body schemas are derived from the model
// types by reflection, so they cannot drift from what the decoder accepts
// (unknown fields are refused: additionalProperties is false).
var openAPI = sync.OnceValue(func() map[string]any {
	schemas := map[string]any{}
	for name, v := range map[string]any{
		"Project": model.Project{}, "Cluster": model.Cluster{}, "App": model.App{},
		"TrafficGroup": model.TrafficGroup{}, "Intent": model.Intent{},
		"Plan": Plan{}, "ApplyResult": ApplyResult{}, "GroupStatus": GroupStatus{},
		"TokenRequest": TokenRequest{}, "TokenResponse": TokenResponse{}, "Error": ErrorBody{},
	} {
		schemas[name] = schemaOf(reflect.TypeOf(v))
	}
	paths := map[string]any{}
	errs := func(codes ...string) map[string]any {
		m := map[string]any{}
		for _, c := range codes {
			m[c] = map[string]any{"description": "error", "content": jsonOf(ref("Error"))}
		}
		return m
	}
	op := func(summary, body string, status string, resp any, codes ...string) map[string]any {
		o := map[string]any{"summary": summary, "parameters": nil}
		r := errs(append([]string{"401"}, codes...)...)
		r[status] = map[string]any{"description": summary, "content": jsonOf(resp)}
		if status == "204" {
			r[status] = map[string]any{"description": summary}
		}
		o["responses"] = r
		if body != "" {
			o["requestBody"] = map[string]any{"required": true, "content": jsonOf(ref(body))}
		}
		return o
	}
	names := map[string]string{store.KindProject: "Project", store.KindCluster: "Cluster", store.KindApp: "App", store.KindGroup: "TrafficGroup", store.KindIntent: "Intent"}
	for _, c := range collections {
		n := names[c.kind]
		list := map[string]any{"type": "object", "properties": map[string]any{"items": map[string]any{"type": "array", "items": ref(n)}}}
		paths[c.list] = withParams(c.list, map[string]any{
			"get":  op("list "+c.kind+"s", "", "200", list, "404"),
			"post": op("create a "+c.kind, n, "201", ref(n), "400", "403", "404", "409", "413"),
		})
		paths[c.item] = withParams(c.item, map[string]any{
			"get":    op("get a "+c.kind, "", "200", ref(n), "404"),
			"put":    op("replace a "+c.kind+" (resourceVersion, if given, must match)", n, "200", ref(n), "400", "403", "404", "409", "413"),
			"delete": op("delete a "+c.kind+" (?resourceVersion= to make it conditional)", "", "204", nil, "403", "404", "409"),
		})
	}
	paths[pPlan] = withParams(pPlan, map[string]any{"get": op("plan: per-object diff against what each target last had applied", "", "200", ref("Plan"), "404", "422")})
	paths[pApply] = withParams(pApply, map[string]any{"post": op("apply: make the group's intents its desired state", "", "202", ref("ApplyResult"), "400", "403", "404", "413", "422")})
	paths[pStatus] = withParams(pStatus, map[string]any{"get": op("delivery status per cluster and resource", "", "200", ref("GroupStatus"), "404")})
	paths[pTokens] = map[string]any{"post": op("issue an API token", "TokenRequest", "201", ref("TokenResponse"), "400", "403", "413")}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "weft controller", "version": "v2"},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
})

var paramRE = regexp.MustCompile(`\{(\w+)\}`)

func withParams(path string, ops map[string]any) map[string]any {
	var params []any
	for _, m := range paramRE.FindAllStringSubmatch(path, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, o := range ops {
		o.(map[string]any)["parameters"] = params
	}
	return ops
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func jsonOf(schema any) map[string]any {
	if schema == nil {
		schema = map[string]any{}
	}
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

var timeType = reflect.TypeOf(time.Time{})

func schemaOf(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.String:
		return map[string]any{"type": "string"}
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return map[string]any{"type": "integer"}
	case t.Kind() == reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case t.Kind() == reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case t.Kind() == reflect.Struct:
		props := map[string]any{}
		var required []string
		for f := range t.Fields() {
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				for k, v := range schemaOf(f.Type)["properties"].(map[string]any) {
					props[k] = v
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type)
			if !strings.Contains(opts, "omit") && f.Type.Kind() != reflect.Pointer {
				required = append(required, name)
			}
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	}
	return map[string]any{}
}
