package reconcile

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Backend delivers objects to one target. The engine never uses one Backend
// from two goroutines at once. It calls Managed first, then Apply for every
// desired object, then Delete for each managed object that is not desired.
type Backend interface {
	// Managed returns the managed objects present at the target. desired
	// lists the objects about to be applied: a backend that cannot enumerate
	// every kind cheaply must, before returning, remember at the target the
	// kinds named in desired, so that a later pass (after a restart too)
	// still finds those objects once they are no longer desired.
	Managed(ctx context.Context, desired []Ref) ([]Ref, error)
	// Apply creates or updates obj at the target.
	Apply(ctx context.Context, obj *unstructured.Unstructured) error
	// Delete removes the object; an absent object is not an error.
	Delete(ctx context.Context, ref Ref) error
}

// BackendFactory makes the Backend for a target of its kind. It must not
// contact the target: an unreachable target is a sync failure, retried with
// backoff, not a construction failure.
type BackendFactory func(t Target) (Backend, error)

var (
	backendsMu sync.RWMutex // guards backends
	backends   = map[string]BackendFactory{}
)

// RegisterBackend makes a Target.Kind deliverable. It is meant to be called
// from init functions and panics if kind is registered twice.
func RegisterBackend(kind string, f BackendFactory) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	if _, dup := backends[kind]; dup {
		panic("reconcile: backend registered twice: " + kind)
	}
	backends[kind] = f
}

func newBackend(t Target) (Backend, error) {
	backendsMu.RLock()
	f, ok := backends[t.Kind]
	backendsMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, t.Kind)
	}
	return f(t)
}
