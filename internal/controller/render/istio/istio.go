// Package istio renders intents for clusters running Istio, as
// networking.istio.io/v1 and security.istio.io/v1 objects built from Istio's own
// Go types, so that every field name and enum value is the one Istio accepts.
//
// Intercluster intents follow the federation model of the APAN-50 experiment:
// a client cluster gets a ServiceEntry for the server's host whose endpoints are
// the remote clusters' east-west gateways (AUTO_PASSTHROUGH, SNI-routed), and a
// DestinationRule whose connection pool and outlier detection eject the local
// endpoints under load, so that calls fail over to the remote cluster.
package istio

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	apinet "istio.io/api/networking/v1alpha3"
	apisec "istio.io/api/security/v1beta1"
	apitype "istio.io/api/type/v1beta1"
	netv1 "istio.io/client-go/pkg/apis/networking/v1"
	secv1 "istio.io/client-go/pkg/apis/security/v1"

	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
)

// API versions and names shared by every intent.
const (
	NetworkingV1 = "networking.istio.io/v1"
	SecurityV1   = "security.istio.io/v1"
	// CrossNetworkGateway is the AUTO_PASSTHROUGH Gateway every server cluster
	// gets once, whatever the number of intents.
	CrossNetworkGateway = "weft-cross-network"
	// DenyAll is the namespace-wide empty AuthorizationPolicy that denies every
	// request not allowed by another policy.
	DenyAll = "deny-all"

	istioSystem           = "istio-system"
	ingressGatewayAccount = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
	egressGatewayHost     = "istio-egressgateway.istio-system.svc.cluster.local"
)

func init() { render.Register("istio", Renderer{}) }

// Renderer renders for clusters whose spec.mesh is istio, into their Kubernetes API.
type Renderer struct{}

func isIstio(c *model.Cluster) bool { return c.Spec.Mesh == model.MeshIstio }

// out collects placements for one intent.
type out struct {
	labels map[string]string
	list   []render.Placement
}

// object is an object of the intent with the given spec, an istio.io/api
// message. A shared object (one that several intents place) has no intent
// label: it must be identical whichever intent made it.
func (o *out) object(apiVersion, kind, ns, name string, shared bool, spec any) *render.Object {
	labels := o.labels
	if shared {
		labels = nil
	}
	return &render.Object{APIVersion: apiVersion, Kind: kind, Namespace: ns, Name: name, Labels: labels, Spec: spec}
}

// place places objects in cluster's Kubernetes API. An object placed in
// several clusters is written once.
func (o *out) place(cluster string, objs ...*render.Object) {
	for _, obj := range objs {
		o.list = append(o.list, render.Placement{Kind: render.TargetKubernetes, Cluster: cluster, Object: obj})
	}
}

// add places a new object in cluster.
func (o *out) add(cluster, apiVersion, kind, ns, name string, shared bool, spec any) {
	o.place(cluster, o.object(apiVersion, kind, ns, name, shared, spec))
}

var _ render.IntentRenderer = Renderer{}

// Render implements render.Renderer.
func (r Renderer) Render(in *render.Input) ([]render.Placement, error) {
	return render.RenderEach(in, r)
}

// RenderIntent implements render.IntentRenderer.
func (Renderer) RenderIntent(in *render.Input, it *model.Intent) ([]render.Placement, error) {
	o := &out{labels: map[string]string{render.IntentLabel: it.Metadata.Name}}
	var err error
	switch it.Spec.Type {
	case model.TypeIntercluster:
		err = intercluster(in, it, o)
	case model.TypeIntracluster:
		err = intracluster(in, it, o)
	case model.TypeExternalOutbound:
		err = externalOutbound(in, it, o)
	case model.TypeExternalInbound:
		err = externalInbound(in, it, o)
	}
	if err != nil {
		return nil, err
	}
	return o.list, nil
}

func intercluster(in *render.Input, it *model.Intent, o *out) error {
	server, err := render.Server(in, it)
	if err != nil {
		return err
	}
	clients, err := render.Clients(in, it)
	if err != nil {
		return err
	}
	serverClusters, err := render.Clusters(in, it, "spec.server", server.Clusters, isIstio)
	if err != nil {
		return err
	}
	port, proto := render.Port(it, server), render.Protocol(it, server)
	host := render.ServiceHost(server)

	// Which client namespaces run in which clusters.
	clientNS := map[string][]string{}
	for i, c := range clients {
		cs, err := render.Clusters(in, it, fmt.Sprintf("spec.clients[%d].service", i), c.Clusters, isIstio)
		if err != nil {
			return err
		}
		for _, cl := range cs {
			if !slices.Contains(clientNS[cl.Metadata.Name], c.Namespace) {
				clientNS[cl.Metadata.Name] = append(clientNS[cl.Metadata.Name], c.Namespace)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(clientNS)) {
		client := in.Clusters[name]
		var remotes []*model.Cluster
		for _, s := range serverClusters {
			if s.Metadata.Name == name {
				continue
			}
			if s.Spec.EastWestGateway == nil {
				return render.Errorf(it, "spec.server", "cluster %s serves %s to cluster %s but has no spec.eastWestGateway", s.Metadata.Name, server.Name, name)
			}
			remotes = append(remotes, s)
		}
		for _, ns := range clientNS[name] {
			if len(remotes) > 0 {
				o.add(name, NetworkingV1, "ServiceEntry", ns, it.Metadata.Name, false, &clientServiceEntry(host, port, proto, remotes).Spec)
			}
			o.add(name, NetworkingV1, "DestinationRule", ns, it.Metadata.Name, false, &destinationRule(it, host, client, remotes).Spec)
		}
	}
	serverSE := o.object(NetworkingV1, "ServiceEntry", server.Namespace, it.Metadata.Name+"-server", false, &serverServiceEntry(server, host, port, proto).Spec)
	policies := serverPolicies(o, it, server, port, principals(clients))
	gateways := map[int]*render.Object{} // by port
	for _, s := range serverClusters {
		// A server cluster needs the gateway only if some client runs elsewhere.
		exported := slices.ContainsFunc(slices.Sorted(maps.Keys(clientNS)), func(c string) bool { return c != s.Metadata.Name })
		if exported && s.Spec.EastWestGateway != nil {
			p := s.Spec.EastWestGateway.Port
			if gateways[p] == nil {
				gateways[p] = o.object(NetworkingV1, "Gateway", istioSystem, CrossNetworkGateway, true, &crossNetworkGateway(p).Spec)
			}
			o.place(s.Metadata.Name, gateways[p], serverSE)
		}
		o.place(s.Metadata.Name, policies...)
	}
	return nil
}

func intracluster(in *render.Input, it *model.Intent, o *out) error {
	server, err := render.Server(in, it)
	if err != nil {
		return err
	}
	clients, err := render.Clients(in, it)
	if err != nil {
		return err
	}
	serverClusters, err := render.Clusters(in, it, "spec.server", server.Clusters, isIstio)
	if err != nil {
		return err
	}
	port := render.Port(it, server)
	host := render.ServiceHost(server)
	// EMCO's design assumed a deny-all installed by hand; weft makes it part
	// of the desired state, so that the allow rule below is the only way in.
	objs := []*render.Object{o.object(SecurityV1, "AuthorizationPolicy", server.Namespace, DenyAll, true, &apisec.AuthorizationPolicy{})}
	objs = append(objs, serverPolicies(o, it, server, port, principals(clients))...)
	if it.Spec.MutualTLS || it.Spec.CircuitBreaking != nil || it.Spec.LoadBalancing != "" {
		// Without remotes, the rule is the same in every cluster.
		objs = append(objs, o.object(NetworkingV1, "DestinationRule", server.Namespace, it.Metadata.Name, false, &destinationRule(it, host, nil, nil).Spec))
	}
	for _, s := range serverClusters {
		o.place(s.Metadata.Name, objs...)
	}
	return nil
}

func externalOutbound(in *render.Input, it *model.Intent, o *out) error {
	source, err := render.Server(in, it)
	if err != nil {
		return err
	}
	clusters, err := render.Clusters(in, it, "spec.server", source.Clusters, isIstio)
	if err != nil {
		return err
	}
	proto := it.Spec.Protocol
	if proto == "" {
		proto = "HTTP"
	}
	tlsOut := proto == "TLS" || proto == "HTTPS"
	defPort := 80
	if tlsOut {
		defPort = 443
	}
	hosts := make([]string, 0, len(it.Spec.Clients))
	var ports []int
	portOf := map[string]int{}
	for _, c := range it.Spec.Clients {
		p := c.Port
		if p == 0 {
			p = it.Spec.Port
		}
		if p == 0 {
			p = defPort
		}
		hosts = append(hosts, c.FQDN)
		portOf[c.FQDN] = p
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	se := &netv1.ServiceEntry{}
	se.Spec.Hosts = hosts
	se.Spec.Location = apinet.ServiceEntry_MESH_EXTERNAL
	se.Spec.Resolution = apinet.ServiceEntry_DNS
	se.Spec.ExportTo = []string{"."}
	for _, p := range ports {
		se.Spec.Ports = append(se.Spec.Ports, &apinet.ServicePort{Number: uint32(p), Name: portName(proto, p), Protocol: proto})
	}
	gwName := it.Metadata.Name + "-egress"
	gwPort, gwProto := 80, "HTTP"
	switch {
	case tlsOut:
		gwPort, gwProto = 443, "TLS"
	case it.Spec.MutualTLS:
		gwPort, gwProto = 443, "HTTPS"
	}
	// The same objects in every cluster.
	objs := []*render.Object{o.object(NetworkingV1, "ServiceEntry", source.Namespace, it.Metadata.Name, false, &se.Spec)}
	if it.Spec.EgressGateway {
		gw := &netv1.Gateway{}
		gw.Spec.Selector = map[string]string{"istio": "egressgateway"}
		srv := &apinet.Server{Port: &apinet.Port{Number: uint32(gwPort), Name: portName(gwProto, gwPort), Protocol: gwProto}, Hosts: hosts}
		switch {
		case tlsOut:
			srv.Tls = &apinet.ServerTLSSettings{Mode: apinet.ServerTLSSettings_PASSTHROUGH}
		case it.Spec.MutualTLS:
			srv.Tls = &apinet.ServerTLSSettings{Mode: apinet.ServerTLSSettings_ISTIO_MUTUAL}
		}
		gw.Spec.Servers = []*apinet.Server{srv}
		objs = append(objs, o.object(NetworkingV1, "Gateway", source.Namespace, gwName, false, &gw.Spec))

		dr := &netv1.DestinationRule{}
		dr.Spec.Host = egressGatewayHost
		dr.Spec.ExportTo = []string{"."}
		sub := &apinet.Subset{Name: it.Metadata.Name}
		if it.Spec.MutualTLS && !tlsOut {
			sub.TrafficPolicy = &apinet.TrafficPolicy{Tls: &apinet.ClientTLSSettings{Mode: apinet.ClientTLSSettings_ISTIO_MUTUAL, Sni: hosts[0]}}
		}
		dr.Spec.Subsets = []*apinet.Subset{sub}
		objs = append(objs, o.object(NetworkingV1, "DestinationRule", source.Namespace, gwName, false, &dr.Spec))

		// One VirtualService per host: the route from the gateway to the outside
		// names a single destination host.
		for i, h := range hosts {
			vs := &netv1.VirtualService{}
			vs.Spec.Hosts = []string{h}
			vs.Spec.Gateways = []string{"mesh", gwName}
			vs.Spec.ExportTo = []string{"."}
			toGW := &apinet.Destination{Host: egressGatewayHost, Subset: it.Metadata.Name, Port: &apinet.PortSelector{Number: uint32(gwPort)}}
			toExt := &apinet.Destination{Host: h, Port: &apinet.PortSelector{Number: uint32(portOf[h])}}
			if tlsOut {
				vs.Spec.Tls = []*apinet.TLSRoute{
					{Match: []*apinet.TLSMatchAttributes{{Gateways: []string{"mesh"}, Port: uint32(portOf[h]), SniHosts: []string{h}}},
						Route: []*apinet.RouteDestination{{Destination: toGW}}},
					{Match: []*apinet.TLSMatchAttributes{{Gateways: []string{gwName}, Port: uint32(gwPort), SniHosts: []string{h}}},
						Route: []*apinet.RouteDestination{{Destination: toExt}}},
				}
			} else {
				vs.Spec.Http = []*apinet.HTTPRoute{
					{Match: []*apinet.HTTPMatchRequest{{Gateways: []string{"mesh"}, Port: uint32(portOf[h])}},
						Route: []*apinet.HTTPRouteDestination{{Destination: toGW}}},
					{Match: []*apinet.HTTPMatchRequest{{Gateways: []string{gwName}, Port: uint32(gwPort)}},
						Route: []*apinet.HTTPRouteDestination{{Destination: toExt}}},
				}
			}
			objs = append(objs, o.object(NetworkingV1, "VirtualService", source.Namespace, fmt.Sprintf("%s-egress-%d", it.Metadata.Name, i), false, &vs.Spec))
		}
	}
	for _, c := range clusters {
		o.place(c.Metadata.Name, objs...)
	}
	return nil
}

// ExternalHost is the host name an external-inbound intent is exposed at in
// cluster c: its externalName, or externalPrefix under the cluster's domain.
func ExternalHost(it *model.Intent, c *model.Cluster) (string, error) {
	if it.Spec.ExternalName != "" {
		return it.Spec.ExternalName, nil
	}
	if c.Spec.Domain == "" {
		return "", render.Errorf(it, "spec.externalPrefix", "cluster %s has no spec.domain to complete the prefix", c.Metadata.Name)
	}
	return it.Spec.ExternalPrefix + "." + c.Spec.Domain, nil
}

func externalInbound(in *render.Input, it *model.Intent, o *out) error {
	server, err := render.Server(in, it)
	if err != nil {
		return err
	}
	clusters, err := render.Clusters(in, it, "spec.server", server.Clusters, isIstio)
	if err != nil {
		return err
	}
	port := render.Port(it, server)
	gwName := it.Metadata.Name + "-ingress"
	// The ingress gateway is the only caller, and only for the allowed requests.
	policies := serverPolicies(o, it, server, port, []string{ingressGatewayAccount})
	byHost := map[string][]*render.Object{} // the same objects in every cluster with the host
	for _, c := range clusters {
		name := c.Metadata.Name
		host, err := ExternalHost(it, c)
		if err != nil {
			return err
		}
		if objs, ok := byHost[host]; ok {
			o.place(name, objs...)
			continue
		}
		gw := &netv1.Gateway{}
		gw.Spec.Selector = map[string]string{"istio": "ingressgateway"}
		srv := &apinet.Server{Port: &apinet.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{host}}
		if t := it.Spec.TLS; t != nil {
			srv.Port = &apinet.Port{Number: 443, Name: "https", Protocol: "HTTPS"}
			mode := apinet.ServerTLSSettings_SIMPLE
			if t.Mode == "MUTUAL" {
				mode = apinet.ServerTLSSettings_MUTUAL
			}
			srv.Tls = &apinet.ServerTLSSettings{Mode: mode, CredentialName: t.CredentialName}
		}
		gw.Spec.Servers = []*apinet.Server{srv}

		vs := &netv1.VirtualService{}
		vs.Spec.Hosts = []string{host}
		vs.Spec.Gateways = []string{gwName}
		vs.Spec.Http = []*apinet.HTTPRoute{{
			Match: httpMatches(it.Spec.Access),
			Route: []*apinet.HTTPRouteDestination{{Destination: &apinet.Destination{Host: render.ServiceHost(server), Port: &apinet.PortSelector{Number: uint32(port)}}}},
		}}
		objs := append([]*render.Object{
			o.object(NetworkingV1, "Gateway", server.Namespace, gwName, false, &gw.Spec),
			o.object(NetworkingV1, "VirtualService", server.Namespace, gwName, false, &vs.Spec),
		}, policies...)
		byHost[host] = objs
		o.place(name, objs...)
	}
	return nil
}

// serverPolicies allows principals to call server, and with mutualTLS requires it.
func serverPolicies(o *out, it *model.Intent, server *model.Service, port int, principals []string) []*render.Object {
	ap := &secv1.AuthorizationPolicy{}
	ap.Spec.Selector = &apitype.WorkloadSelector{MatchLabels: map[string]string{"app": server.Name}}
	ap.Spec.Action = apisec.AuthorizationPolicy_ALLOW
	from := []*apisec.Rule_From{{Source: &apisec.Source{Principals: principals}}}
	ops := operations(it.Spec.Access, port)
	for _, op := range ops {
		ap.Spec.Rules = append(ap.Spec.Rules, &apisec.Rule{From: from, To: []*apisec.Rule_To{{Operation: op}}})
	}
	objs := []*render.Object{o.object(SecurityV1, "AuthorizationPolicy", server.Namespace, it.Metadata.Name, false, &ap.Spec)}
	if it.Spec.MutualTLS {
		pa := &secv1.PeerAuthentication{}
		pa.Spec.Selector = &apitype.WorkloadSelector{MatchLabels: map[string]string{"app": server.Name}}
		pa.Spec.Mtls = &apisec.PeerAuthentication_MutualTLS{Mode: apisec.PeerAuthentication_MutualTLS_STRICT}
		objs = append(objs, o.object(SecurityV1, "PeerAuthentication", server.Namespace, it.Metadata.Name, false, &pa.Spec))
	}
	return objs
}

// operations returns one operation per access rule (an empty list allows every
// method and path on the port).
func operations(rules []model.AccessRule, port int) []*apisec.Operation {
	ports := []string{strconv.Itoa(port)}
	if len(rules) == 0 {
		return []*apisec.Operation{{Ports: ports}}
	}
	ops := make([]*apisec.Operation, 0, len(rules))
	for _, r := range rules {
		ops = append(ops, &apisec.Operation{Ports: ports, Methods: r.Methods, Paths: r.Paths})
	}
	return ops
}

// httpMatches turns access rules into VirtualService matches; a path ending in
// '*' is a prefix, as in AuthorizationPolicy.
func httpMatches(rules []model.AccessRule) []*apinet.HTTPMatchRequest {
	var ms []*apinet.HTTPMatchRequest
	for _, r := range rules {
		paths := r.Paths
		if len(paths) == 0 {
			paths = []string{""}
		}
		methods := r.Methods
		if len(methods) == 0 {
			methods = []string{""}
		}
		for _, p := range paths {
			for _, m := range methods {
				mr := &apinet.HTTPMatchRequest{}
				if p != "" {
					if pre, ok := strings.CutSuffix(p, "*"); ok {
						mr.Uri = &apinet.StringMatch{MatchType: &apinet.StringMatch_Prefix{Prefix: pre}}
					} else {
						mr.Uri = &apinet.StringMatch{MatchType: &apinet.StringMatch_Exact{Exact: p}}
					}
				}
				if m != "" {
					mr.Method = &apinet.StringMatch{MatchType: &apinet.StringMatch_Exact{Exact: m}}
				}
				ms = append(ms, mr)
			}
		}
	}
	return ms
}

func principals(clients []*model.Service) []string {
	var ps []string
	for _, c := range clients {
		if p := render.Principal(c); !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	return ps
}

func crossNetworkGateway(port int) *netv1.Gateway {
	gw := &netv1.Gateway{}
	gw.Spec.Selector = map[string]string{"istio": "eastwestgateway"}
	gw.Spec.Servers = []*apinet.Server{{
		Port:  &apinet.Port{Number: uint32(port), Name: "tls", Protocol: "TLS"},
		Hosts: []string{"*.local"},
		Tls:   &apinet.ServerTLSSettings{Mode: apinet.ServerTLSSettings_AUTO_PASSTHROUGH},
	}}
	return gw
}

// serverServiceEntry exports the server's workloads under its host, so that the
// east-west gateway's SNI routes reach them even where no Kubernetes Service
// selects them by that name.
func serverServiceEntry(server *model.Service, host string, port int, proto string) *netv1.ServiceEntry {
	se := &netv1.ServiceEntry{}
	se.Spec.Hosts = []string{host}
	se.Spec.Location = apinet.ServiceEntry_MESH_INTERNAL
	se.Spec.Resolution = apinet.ServiceEntry_STATIC
	se.Spec.Ports = []*apinet.ServicePort{{Number: uint32(port), Name: portName(proto, port), Protocol: proto}}
	se.Spec.WorkloadSelector = &apinet.WorkloadSelector{Labels: map[string]string{"app": server.Name}}
	return se
}

// clientServiceEntry adds the remote clusters' east-west gateways as endpoints of
// the server's host, each with its locality and network, so that locality load
// balancing prefers the local endpoints and fails over to them.
func clientServiceEntry(host string, port int, proto string, remotes []*model.Cluster) *netv1.ServiceEntry {
	se := &netv1.ServiceEntry{}
	se.Spec.Hosts = []string{host}
	se.Spec.Location = apinet.ServiceEntry_MESH_INTERNAL
	se.Spec.Resolution = apinet.ServiceEntry_STATIC
	se.Spec.ExportTo = []string{"."}
	pn := portName(proto, port)
	se.Spec.Ports = []*apinet.ServicePort{{Number: uint32(port), Name: pn, Protocol: proto}}
	for _, r := range remotes {
		gw := r.Spec.EastWestGateway
		if net.ParseIP(gw.Address) == nil {
			// A STATIC entry takes only IP endpoints; a gateway known by name is resolved.
			se.Spec.Resolution = apinet.ServiceEntry_DNS
		}
		network := r.Spec.Network
		if network == "" {
			network = r.Metadata.Name
		}
		se.Spec.Endpoints = append(se.Spec.Endpoints, &apinet.WorkloadEntry{
			Address:  gw.Address,
			Ports:    map[string]uint32{pn: uint32(gw.Port)},
			Locality: r.Spec.Locality,
			Network:  network,
		})
	}
	return se
}

// destinationRule applies the intent's traffic policy to host as seen from
// cluster local; remotes, if any, become locality failover targets (without
// remotes, local is not read).
func destinationRule(it *model.Intent, host string, local *model.Cluster, remotes []*model.Cluster) *netv1.DestinationRule {
	dr := &netv1.DestinationRule{}
	dr.Spec.Host = host
	dr.Spec.ExportTo = []string{"."}
	tp := &apinet.TrafficPolicy{}
	if it.Spec.MutualTLS {
		tp.Tls = &apinet.ClientTLSSettings{Mode: apinet.ClientTLSSettings_ISTIO_MUTUAL}
	}
	if cb := it.Spec.CircuitBreaking; cb != nil {
		tp.ConnectionPool, tp.OutlierDetection = circuitBreaking(cb)
	}
	lb := &apinet.LoadBalancerSettings{}
	if p, ok := apinet.LoadBalancerSettings_SimpleLB_value[it.Spec.LoadBalancing]; ok && it.Spec.LoadBalancing != "" {
		lb.LbPolicy = &apinet.LoadBalancerSettings_Simple{Simple: apinet.LoadBalancerSettings_SimpleLB(p)}
	}
	var failover []*apinet.LocalityLoadBalancerSetting_Failover
	for _, r := range remotes {
		from, to := render.Region(local.Spec.Locality), render.Region(r.Spec.Locality)
		if from == "" || to == "" || to == from || slices.ContainsFunc(failover, func(f *apinet.LocalityLoadBalancerSetting_Failover) bool { return f.To == to }) {
			continue
		}
		failover = append(failover, &apinet.LocalityLoadBalancerSetting_Failover{From: from, To: to})
	}
	// Istio uses locality failover only with outlier detection, which is what
	// ejects the overloaded local endpoints.
	if len(failover) > 0 && tp.OutlierDetection != nil {
		lb.LocalityLbSetting = &apinet.LocalityLoadBalancerSetting{Failover: failover}
	}
	if lb.LbPolicy != nil || lb.LocalityLbSetting != nil {
		tp.LoadBalancer = lb
	}
	if tp.Tls != nil || tp.ConnectionPool != nil || tp.OutlierDetection != nil || tp.LoadBalancer != nil {
		dr.Spec.TrafficPolicy = tp
	}
	return dr
}

func circuitBreaking(cb *model.CircuitBreaking) (*apinet.ConnectionPoolSettings, *apinet.OutlierDetection) {
	var cp *apinet.ConnectionPoolSettings
	if cb.MaxConnections != 0 || cb.HTTP1MaxPendingRequests != 0 || cb.HTTP2MaxRequests != 0 || cb.MaxRequestsPerConnection != 0 {
		cp = &apinet.ConnectionPoolSettings{}
		if cb.MaxConnections != 0 {
			cp.Tcp = &apinet.ConnectionPoolSettings_TCPSettings{MaxConnections: int32(cb.MaxConnections)}
		}
		if cb.HTTP1MaxPendingRequests != 0 || cb.HTTP2MaxRequests != 0 || cb.MaxRequestsPerConnection != 0 {
			cp.Http = &apinet.ConnectionPoolSettings_HTTPSettings{
				Http1MaxPendingRequests:  int32(cb.HTTP1MaxPendingRequests),
				Http2MaxRequests:         int32(cb.HTTP2MaxRequests),
				MaxRequestsPerConnection: int32(cb.MaxRequestsPerConnection),
			}
		}
	}
	var od *apinet.OutlierDetection
	if cb.ConsecutiveErrors != 0 || cb.Interval != "" || cb.BaseEjectionTime != "" || cb.MaxEjectionPercent != 0 {
		od = &apinet.OutlierDetection{MaxEjectionPercent: int32(cb.MaxEjectionPercent)}
		if cb.ConsecutiveErrors != 0 {
			// consecutiveErrors is deprecated in Istio; its meaning is 5xx errors.
			od.Consecutive_5XxErrors = wrapperspb.UInt32(uint32(cb.ConsecutiveErrors))
		}
		od.Interval = duration(cb.Interval)
		od.BaseEjectionTime = duration(cb.BaseEjectionTime)
	}
	return cp, od
}

// duration converts a validated Go duration string; "" is nil.
func duration(s string) *durationpb.Duration {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		panic("istio: unvalidated duration " + s) // model.Intent.Validate checks it
	}
	return durationpb.New(d)
}

// portName follows Istio's protocol-prefix naming, which protocol selection reads.
func portName(proto string, port int) string {
	return strings.ToLower(proto) + "-" + strconv.Itoa(port)
}
