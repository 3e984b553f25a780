package apitype

import (
	"encoding/json"
	"time"
)

// ObjectRef names an object the controller places at a target.
type ObjectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// FieldChange is one differing field of a planned change, by JSON path.
type FieldChange struct {
	Path string `json:"path"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// Change is what a plan does to one object of a target.
type Change struct {
	Target string    `json:"target,omitempty"`
	Action string    `json:"action"` // create, update, delete or unchanged
	Ref    ObjectRef `json:"ref"`
	// Object is the desired object's JSON; none for deletes. Kept as the
	// bytes the controller compiled, so that a plan's answer copies them
	// rather than building and marshalling each object again.
	Object json.RawMessage `json:"object,omitempty"`
	Diff   []FieldChange   `json:"diff,omitempty"`
}

// TargetPlan is the planned changes at one target.
type TargetPlan struct {
	Target  string   `json:"target"`
	Kind    string   `json:"kind"`
	Objects []Change `json:"objects"`
}

// Plan is GET .../traffic-groups/{group}/plan: per cluster, the changes at
// its Kubernetes API and weft site together; per DNS target, its record
// changes.
type Plan struct {
	Clusters map[string]*TargetPlan `json:"clusters"`
	DNS      map[string]*TargetPlan `json:"dns,omitempty"`
}

// GroupApplyResult is POST .../traffic-groups/{group}/apply: what was
// released, with the plan relative to what the targets had before.
type GroupApplyResult struct {
	Generation int64    `json:"generation"`
	Targets    []string `json:"targets"`
	Plan       *Plan    `json:"plan"`
}

// ResourceStatus is one object's delivery state at one target.
type ResourceStatus struct {
	Target string `json:"target"`
	ObjectRef
	State    string    `json:"state"`
	Error    string    `json:"error,omitempty"`
	Attempts int       `json:"attempts"`
	At       time.Time `json:"at,omitzero"`
}

// TargetStatus is the state of every released object at a cluster or DNS
// target.
type TargetStatus struct {
	State     string           `json:"state"` // the worst of its resources
	Resources []ResourceStatus `json:"resources"`
}

// GroupStatus is GET .../traffic-groups/{group}/status: a group's delivery
// status since its last apply.
type GroupStatus struct {
	Generation int64                    `json:"generation"`
	AppliedAt  time.Time                `json:"appliedAt,omitzero"`
	State      string                   `json:"state"`
	Counts     map[string]int           `json:"counts"`
	Clusters   map[string]*TargetStatus `json:"clusters"`
	DNS        map[string]*TargetStatus `json:"dns,omitempty"`
}

// APITokenRequest is POST /v2/tokens: a new controller API token.
type APITokenRequest struct {
	Role string `json:"role"`
}

// APITokenResponse carries a new controller API token; it is shown once and
// stored only hashed.
type APITokenResponse struct {
	Role  string `json:"role"`
	Token string `json:"token"`
}
