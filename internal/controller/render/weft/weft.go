// Package weft renders intercluster and intracluster intents as weft Connector
// and Listener resources for clusters that run a weft site: a Connector where
// the server runs, a Listener where its clients run.
package weft

import (
	"fmt"
	"strings"

	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/resource"
)

func init() { render.Register("weft", Renderer{}) }

// Renderer renders for clusters whose spec.weft names a site.
type Renderer struct{}

var _ render.IntentRenderer = Renderer{}

func hasSite(c *model.Cluster) bool { return c.Spec.Weft != nil }

// Render implements render.Renderer.
func (r Renderer) Render(in *render.Input) ([]render.Placement, error) {
	return render.RenderEach(in, r)
}

// RenderIntent implements render.IntentRenderer. External intents have no
// weft form yet: ingress and egress stay with the cluster's mesh.
func (Renderer) RenderIntent(in *render.Input, it *model.Intent) ([]render.Placement, error) {
	var out []render.Placement
	if it.Spec.Type != model.TypeIntercluster && it.Spec.Type != model.TypeIntracluster {
		return nil, nil
	}
	server, err := render.Server(in, it)
	if err != nil {
		return nil, err
	}
	clients, err := render.Clients(in, it)
	if err != nil {
		return nil, err
	}
	port := render.Port(it, server)
	proto := resource.ProtocolTCP
	switch render.Protocol(it, server) {
	case "HTTP", "HTTP2", "GRPC":
		proto = resource.ProtocolHTTP
	}
	// The address is the service's namespaced name, the same in every cluster,
	// so that listeners anywhere reach connectors anywhere.
	address := server.Name + "." + server.Namespace
	name := server.Name + "-" + server.Namespace
	servers, err := render.Clusters(in, it, "spec.server", server.Clusters, hasSite)
	if err != nil {
		return nil, err
	}
	for _, c := range servers {
		conn := &resource.Connector{Spec: resource.ConnectorSpec{
			Address: address, Target: fmt.Sprintf("%s:%d", render.ServiceHost(server), port), Protocol: proto,
		}}
		conn.Name = name
		if cb := it.Spec.CircuitBreaking; cb != nil && cb.MaxConnections > 0 {
			conn.Spec.MaxConnections = uint32(cb.MaxConnections)
		}
		p, err := place(c, conn, &conn.Spec, resource.KindConnector)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	var names []string
	for _, cl := range clients {
		names = append(names, cl.Clusters...)
	}
	clientClusters, err := render.Clusters(in, it, "spec.clients", names, hasSite)
	if err != nil {
		return nil, err
	}
	for _, c := range clientClusters {
		l := &resource.Listener{Spec: resource.ListenerSpec{Address: address, Host: "0.0.0.0", Port: port, Protocol: proto}}
		l.Name = name
		p, err := place(c, l, &l.Spec, resource.KindListener)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// place defaults and validates obj as a site would, so that the controller never
// plans an object the site will refuse. spec is obj's spec, read after
// defaulting.
func place(c *model.Cluster, o interface {
	Default() error
	GetName() string
}, spec any, kind string) (render.Placement, error) {
	if err := o.Default(); err != nil {
		return render.Placement{}, fmt.Errorf("weft %s for cluster %s: %w", strings.ToLower(kind), c.Metadata.Name, err)
	}
	obj := &render.Object{APIVersion: resource.APIVersion, Kind: kind, Name: o.GetName(), Spec: spec}
	if ns := c.Spec.Weft.Namespace; ns != "" {
		// A site in Kubernetes mode: the same resource, as a CR in its
		// namespace (server-side applied by the kubernetes backend).
		obj.Namespace = ns
		return render.Placement{Kind: render.TargetKubernetes, Cluster: c.Metadata.Name, Object: obj}, nil
	}
	return render.Placement{Kind: render.TargetWeft, Cluster: c.Metadata.Name, Object: obj}, nil
}
