// Package render turns a traffic group's intents into the objects each target
// should hold. Each mesh is a Renderer registered under a name (Caddy's module
// pattern); a new mesh is a new renderer package imported for its side effect.
package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"

	"weft.dev/weft/internal/controller/canonjson"
	"weft.dev/weft/internal/controller/model"
)

// Target kinds: how a target's objects are delivered.
const (
	TargetKubernetes = "kubernetes"
	TargetWeft       = "weft"
	TargetRFC2136    = "rfc2136"
)

// Labels on rendered objects.
const (
	ManagedByLabel = "weft.dev/managed-by" // same key as resource.ManagedByLabel
	ManagedBy      = "controller"
	IntentLabel    = "weft.dev/intent"
)

// ErrUnresolved is wrapped when an intent names something the app or project
// does not have (a service, a cluster, a gateway).
var ErrUnresolved = errors.New("unresolved reference")

// Error says which intent and field could not be rendered.
type Error struct {
	Intent  string
	Field   string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("intent %s: %s: %s", e.Intent, e.Field, e.Message)
}

// Unwrap makes every Error match ErrUnresolved.
func (e *Error) Unwrap() error { return ErrUnresolved }

// Errorf returns an *Error for intent in's field.
func Errorf(in *model.Intent, field, format string, args ...any) error {
	return &Error{Intent: in.Metadata.Name, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Input is one traffic group resolved against its project and app.
type Input struct {
	Project  string
	App      *model.App
	Group    string
	Clusters map[string]*model.Cluster // every cluster of the project
	Intents  []*model.Intent           // sorted by name
}

// DNSServer is an RFC 2136 server and the TSIG key to update it with.
type DNSServer struct {
	Server, Zone, TSIGKeyName, TSIGSecret, TSIGAlgorithm string
}

// Placement is one rendered object and where it goes: a cluster's Kubernetes API
// or weft site, or a DNS server (DNSKey names it uniquely within the group).
type Placement struct {
	Kind    string // TargetKubernetes, TargetWeft or TargetRFC2136
	Cluster string // for TargetKubernetes and TargetWeft
	DNSKey  string // for TargetRFC2136
	DNS     *DNSServer
	Object  *Object
}

// Renderer renders intents for one mesh or delivery kind. Render must be pure:
// no I/O, and the same input gives the same output, since plans are diffs.
// It returns placements only for intents and clusters it handles.
type Renderer interface {
	Render(in *Input) ([]Placement, error)
}

// IntentRenderer is a Renderer whose placements for an intent depend on that
// intent and the input's project, app, group and clusters only, never on the
// other intents, and whose Render is RenderEach. compile.Cache then renders
// again only the intents that changed.
type IntentRenderer interface {
	Renderer
	RenderIntent(in *Input, it *model.Intent) ([]Placement, error)
}

// RenderEach renders in's intents one by one, in order: the Render of an
// IntentRenderer.
func RenderEach(in *Input, r IntentRenderer) ([]Placement, error) {
	var all []Placement
	for _, it := range in.Intents {
		ps, err := r.RenderIntent(in, it)
		if err != nil {
			return nil, err
		}
		all = append(all, ps...)
	}
	return all, nil
}

var (
	mu        sync.Mutex // guards renderers
	renderers = map[string]Renderer{}
)

// Register adds a renderer under a unique name; call it from an init function.
// It panics on a duplicate name, which is a programming error.
func Register(name string, r Renderer) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := renderers[name]; dup {
		panic("render: renderer registered twice: " + name)
	}
	renderers[name] = r
}

// Named is a registered renderer.
type Named struct {
	Name     string
	Renderer Renderer
}

// Registered returns the renderers in name order, so output order is stable.
func Registered() []Named {
	mu.Lock()
	defer mu.Unlock()
	out := make([]Named, 0, len(renderers))
	for n, r := range renderers {
		out = append(out, Named{n, r})
	}
	slices.SortFunc(out, func(a, b Named) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Object is a rendered object, typed: Compile writes its JSON once, straight
// from the typed spec, and names it by the hash of those bytes. A renderer
// that places one object in several clusters places the same *Object, which
// is then written once. Objects must not be modified once placed.
type Object struct {
	APIVersion, Kind, Namespace, Name string
	// Labels are set besides the managed-by label.
	Labels map[string]string
	// Spec is an istio.io/api message (written as the Istio types'
	// protobuf-aware MarshalJSON writes it, which is what the API server
	// accepts), a map of what json.Unmarshal gives (and int64), or any other
	// value encoding/json marshals (a weft resource spec). Only the spec is
	// typed: metadata is built here, with no zero-valued fields
	// (creationTimestamp: null) to leak into server-side apply, and status
	// is the server's.
	Spec any
}

// label is one metadata label.
type label struct{ key, value string }

// AppendJSON appends o's canonical JSON (json.Marshal's bytes for the map
// json.Unmarshal would make of it) to w.Buf, with the label key=value added
// unless key is "". On an error w.Buf is as it was.
func (o *Object) AppendJSON(w *canonjson.Writer, key, value string) error {
	var arr [4]label
	labels := append(arr[:0], label{ManagedByLabel, ManagedBy})
	set := func(k, v string) {
		for i := range labels {
			if labels[i].key == k {
				labels[i].value = v
				return
			}
		}
		labels = append(labels, label{k, v})
	}
	for k, v := range o.Labels {
		set(k, v)
	}
	if key != "" {
		set(key, value)
	}
	slices.SortFunc(labels, func(a, b label) int { return strings.Compare(a.key, b.key) })

	start := len(w.Buf)
	w.Buf = append(w.Buf, `{"apiVersion":`...)
	w.String(o.APIVersion)
	w.Buf = append(w.Buf, `,"kind":`...)
	w.String(o.Kind)
	w.Buf = append(w.Buf, `,"metadata":{"labels":{`...)
	for i, l := range labels {
		if i > 0 {
			w.Buf = append(w.Buf, ',')
		}
		w.String(l.key)
		w.Buf = append(w.Buf, ':')
		w.String(l.value)
	}
	w.Buf = append(w.Buf, `},"name":`...)
	w.String(o.Name)
	if o.Namespace != "" {
		w.Buf = append(w.Buf, `,"namespace":`...)
		w.String(o.Namespace)
	}
	w.Buf = append(w.Buf, `},"spec":`...)
	if err := appendSpec(w, o.Spec); err != nil {
		w.Buf = w.Buf[:start]
		return fmt.Errorf("render %s %s: %w", o.Kind, o.Name, err)
	}
	w.Buf = append(w.Buf, '}')
	return nil
}

// protoJSON is an Istio API message: its MarshalJSON is the default
// jsonpb.Marshaler's, which canonjson.Proto reproduces.
type protoJSON interface {
	json.Marshaler
	ProtoReflect() protoreflect.Message
}

// appendSpec writes spec's JSON form: directly where canonjson can, else by
// the round trip through JSON, which handles everything.
func appendSpec(w *canonjson.Writer, spec any) error {
	start := len(w.Buf)
	switch s := spec.(type) {
	case protoJSON:
		if s.ProtoReflect().IsValid() {
			if err := w.Proto(s.ProtoReflect()); !errors.Is(err, canonjson.ErrUnsupported) {
				return err
			}
			w.Buf = w.Buf[:start]
		}
	case map[string]any:
		if w.Value(s) {
			return nil
		}
		w.Buf = w.Buf[:start]
	}
	m, err := jsonMap(spec)
	if err != nil {
		return err
	}
	if !w.Value(m) {
		return fmt.Errorf("spec %T has no JSON form", spec) // NaN or an infinity in a map
	}
	return nil
}

// jsonMap is spec's JSON form as a map, by the round trip through JSON.
func jsonMap(spec any) (map[string]any, error) {
	var data []byte
	var err error
	if m, ok := spec.(json.Marshaler); ok {
		// Directly: encoding/json would validate and compact the output,
		// which json.Unmarshal below parses anyway.
		data, err = m.MarshalJSON()
	} else {
		data, err = json.Marshal(spec)
	}
	if err != nil {
		return nil, err
	}
	s := map[string]any{}
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	return s, nil
}

// ServiceHost is a service's cluster-local host name.
func ServiceHost(s *model.Service) string {
	return s.Name + "." + s.Namespace + ".svc.cluster.local"
}

// Principal is the SPIFFE-style identity Istio gives a service's workloads.
func Principal(s *model.Service) string {
	return "cluster.local/ns/" + s.Namespace + "/sa/" + s.ServiceAccount
}

// Region is the first part of a locality.
func Region(locality string) string {
	r, _, _ := strings.Cut(locality, "/")
	return r
}

// Port is the intent's port, or its server's.
func Port(in *model.Intent, server *model.Service) int {
	if in.Spec.Port != 0 {
		return in.Spec.Port
	}
	return server.Port
}

// Protocol is the intent's protocol, or its server's.
func Protocol(in *model.Intent, server *model.Service) string {
	if in.Spec.Protocol != "" {
		return in.Spec.Protocol
	}
	return server.Protocol
}

// Server resolves the intent's server service in the app.
func Server(in *Input, it *model.Intent) (*model.Service, error) {
	s := in.App.ServiceByName(it.Spec.Server)
	if s == nil {
		return nil, Errorf(it, "spec.server", "app %s has no service %q", in.App.Metadata.Name, it.Spec.Server)
	}
	return s, nil
}

// Clients resolves the intent's client services in the app.
func Clients(in *Input, it *model.Intent) ([]*model.Service, error) {
	out := make([]*model.Service, 0, len(it.Spec.Clients))
	for i, c := range it.Spec.Clients {
		s := in.App.ServiceByName(c.Service)
		if s == nil {
			return nil, Errorf(it, fmt.Sprintf("spec.clients[%d].service", i), "app %s has no service %q", in.App.Metadata.Name, c.Service)
		}
		out = append(out, s)
	}
	return out, nil
}

// Clusters returns the named clusters that exist and pass keep, in order, without
// duplicates. A service listed in a cluster the project does not have is an error.
func Clusters(in *Input, it *model.Intent, field string, names []string, keep func(*model.Cluster) bool) ([]*model.Cluster, error) {
	var out []*model.Cluster
	seen := map[string]bool{}
	for _, n := range names {
		c, ok := in.Clusters[n]
		if !ok {
			return nil, Errorf(it, field, "project %s has no cluster %q", in.Project, n)
		}
		if !seen[n] && keep(c) {
			out = append(out, c)
		}
		seen[n] = true
	}
	slices.SortFunc(out, func(a, b *model.Cluster) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	return out, nil
}
