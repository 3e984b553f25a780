// Package reconcile is the controller's sync engine: it delivers each
// target's desired objects (a Kubernetes cluster, a weft site, a DNS zone),
// removes the managed objects that are no longer desired, and records a status
// per object.
//
// It follows Linkerd's service mirror: triggers and the resync ticker only
// enqueue; workers take one target at a time off a rate-limited queue and
// retry failures with capped, jittered exponential backoff. Every pass reads
// the current desired state from the Source, so a target that was offline for
// days receives today's state, never a replay of what changed meanwhile. The
// engine keeps no state that matters across restarts: desired state lives in
// the Source's store and the managed objects are found at the target itself.
package reconcile

import (
	"context"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/resource"
)

// ManagedByLabel marks every object the controller owns at a target. Only
// objects carrying ManagedByLabel=ManagedByValue are ever deleted, so objects
// created by people or other tools are left alone.
const (
	ManagedByLabel = resource.ManagedByLabel
	ManagedByValue = "controller"
)

// Target is where desired objects are delivered.
type Target struct {
	Name       string // stable key, e.g. "p1/east/kubernetes", "p1/east/weft", "p1/dns/<intent>"
	Kind       string // "kubernetes" | "weft" | "rfc2136": selects the Backend
	Kubeconfig []byte // kubernetes
	WeftAdmin  string // weft: the site's admin URL
	WeftToken  string // weft: bearer token for WeftAdmin
	DNS        *DNSServer
}

// DNSServer is an RFC 2136 target: a zone on a primary server accepting
// TSIG-signed updates and zone transfers.
type DNSServer struct {
	Server        string // host:port
	Zone          string
	TSIGKeyName   string
	TSIGSecret    string // base64, as in BIND's key clause
	TSIGAlgorithm string // e.g. "hmac-sha256"; empty means hmac-sha256
}

// Desired is the complete desired state of one target. An empty Objects list
// is meaningful: every managed object at the target is deleted.
type Desired struct {
	Target  Target
	Objects []*unstructured.Unstructured // each must carry ManagedByLabel=ManagedByValue
}

// Source returns the current desired state of every target. It is called on
// every pass and must return the full state, not changes; a target that
// still exists but should hold nothing must be returned with no Objects,
// otherwise its managed objects are only pruned while this engine remembers
// the target (it forgets on restart).
type Source interface {
	Desired(ctx context.Context) ([]Desired, error)
}

// Ref names one object at a target.
type Ref struct {
	APIVersion, Kind, Namespace, Name string
}

// Status states.
const (
	StatePending = "pending" // desired, not yet delivered in its current form
	StateApplied = "applied"
	StateFailed  = "failed"
	StateDeleted = "deleted" // pruned from the target because no longer desired
)

// Status is the delivery state of one object at one target.
type Status struct {
	Target   string
	Ref      Ref
	State    string // pending|applied|failed|deleted
	Error    string // set when State is failed
	Attempts int    // consecutive failed attempts; 0 once applied or deleted
	At       time.Time
	Hash     string // of the desired object, to tell which version was applied
}

// StatusSink persists statuses. The engine records a status only when it
// changes, so a sink may write every call through to its store.
type StatusSink interface {
	RecordStatus(ctx context.Context, s Status) error
}

// RefOf returns the Ref of obj.
func RefOf(obj *unstructured.Unstructured) Ref {
	return Ref{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// unversioned is r without its version: a target may list an object at
// another version of its group than the one it was applied at, and it is
// still the same object.
func (r Ref) unversioned() Ref {
	if i := strings.IndexByte(r.APIVersion, '/'); i >= 0 {
		r.APIVersion = r.APIVersion[:i]
	} else {
		r.APIVersion = ""
	}
	return r
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.APIVersion + "/" + r.Kind + "/" + r.Name
	}
	return r.APIVersion + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}
