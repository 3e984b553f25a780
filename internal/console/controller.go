package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"weft.dev/weft/internal/apitype"
)

// maxGroups bounds the traffic groups one controller snapshot plans: each
// plan compiles the group's intents.
const maxGroups = 50

// maxAnswer bounds one API answer the controller console reads.
const maxAnswer = 8 << 20

// ControllerSnapshot is what the controller console shows at one moment:
// every project with its clusters and traffic groups.
type ControllerSnapshot struct {
	Time     time.Time     `json:"time"`
	Projects []ProjectView `json:"projects"`
	// Truncated says that more than maxGroups groups exist; the rest are
	// left out.
	Truncated bool `json:"truncated,omitempty"`
}

// ProjectView is one project.
type ProjectView struct {
	Name     string            `json:"name"`
	Clusters []json.RawMessage `json:"clusters"`
	Groups   []GroupView       `json:"groups"`
}

// GroupView is one traffic group: its intents, the plan that releasing
// them now would carry out (the diff against what the clusters have) and
// its per-cluster sync status.
type GroupView struct {
	App     string               `json:"app"`
	Version string               `json:"version"`
	Name    string               `json:"name"`
	Intents []json.RawMessage    `json:"intents"`
	Plan    *apitype.Plan        `json:"plan,omitempty"`
	Status  *apitype.GroupStatus `json:"status,omitempty"`
	// Error says why the plan or status is missing.
	Error string `json:"error,omitempty"`
}

// named is the part of every controller object the walk needs.
type named struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version string `json:"version"`
	} `json:"spec"`
}

type list struct {
	Items []json.RawMessage `json:"items"`
}

// ControllerSnapshots returns the Snapshot function of the controller
// console: it reads the controller's own API (api) in-process with the
// session's credential, so the console sees exactly what that token may.
func ControllerSnapshots(api http.Handler) func(context.Context, string) (any, error) {
	return func(ctx context.Context, cred string) (any, error) {
		get := func(v any, format string, args ...string) error {
			esc := make([]any, len(args))
			for i, a := range args {
				esc[i] = url.PathEscape(a)
			}
			return fetch(ctx, api, cred, fmt.Sprintf(format, esc...), v)
		}
		snap := ControllerSnapshot{Time: time.Now(), Projects: []ProjectView{}}
		var projects list
		if err := get(&projects, "/v2/projects"); err != nil {
			return nil, err
		}
		groups := 0
		for _, raw := range projects.Items {
			p := ProjectView{Name: name(raw).Metadata.Name, Clusters: []json.RawMessage{}, Groups: []GroupView{}}
			var clusters, apps list
			if err := get(&clusters, "/v2/projects/%s/clusters", p.Name); err != nil {
				return nil, err
			}
			p.Clusters = append(p.Clusters, clusters.Items...)
			if err := get(&apps, "/v2/projects/%s/apps", p.Name); err != nil {
				return nil, err
			}
			for _, ar := range apps.Items {
				a := name(ar)
				var gs list
				if err := get(&gs, "/v2/projects/%s/apps/%s/%s/traffic-groups", p.Name, a.Metadata.Name, a.Spec.Version); err != nil {
					return nil, err
				}
				for _, gr := range gs.Items {
					if groups == maxGroups {
						snap.Truncated = true
						break
					}
					groups++
					g := GroupView{App: a.Metadata.Name, Version: a.Spec.Version, Name: name(gr).Metadata.Name}
					base := []string{p.Name, g.App, g.Version, g.Name}
					var in list
					if err := get(&in, "/v2/projects/%s/apps/%s/%s/traffic-groups/%s/intents", base...); err != nil {
						return nil, err
					}
					g.Intents = append([]json.RawMessage{}, in.Items...)
					var plan apitype.Plan
					var status apitype.GroupStatus
					if err := get(&plan, "/v2/projects/%s/apps/%s/%s/traffic-groups/%s/plan", base...); err != nil {
						g.Error = err.Error()
					} else {
						g.Plan = &plan
					}
					if err := get(&status, "/v2/projects/%s/apps/%s/%s/traffic-groups/%s/status", base...); err != nil {
						g.Error = err.Error()
					} else {
						g.Status = &status
					}
					p.Groups = append(p.Groups, g)
				}
			}
			snap.Projects = append(snap.Projects, p)
		}
		return snap, nil
	}
}

func name(raw json.RawMessage) named {
	var n named
	json.Unmarshal(raw, &n) // a field missing stays empty
	return n
}

// fetch GETs path from h in-process with credential as the bearer token
// and decodes the JSON answer into v; an answer that is not 200 is an
// error with the API's message.
func fetch(ctx context.Context, h http.Handler, credential, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+credential)
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	h.ServeHTTP(rec, req)
	if rec.over {
		return fmt.Errorf("GET %s: the answer is over %d bytes", path, maxAnswer)
	}
	if rec.code != http.StatusOK {
		var e apitype.ErrorBody
		if json.Unmarshal(rec.body.Bytes(), &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("GET %s: %s", path, e.Error.Message)
		}
		return fmt.Errorf("GET %s: status %d", path, rec.code)
	}
	if err := json.Unmarshal(rec.body.Bytes(), v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// recorder is the http.ResponseWriter of an in-process request, bounded
// to maxAnswer bytes.
type recorder struct {
	header http.Header
	code   int
	wrote  bool
	body   bytes.Buffer
	over   bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if r.body.Len()+len(p) > maxAnswer {
		r.over = true
		return 0, fmt.Errorf("answer over %d bytes", maxAnswer)
	}
	return r.body.Write(p)
}
