// Package model defines the controller's API objects: projects, clusters, apps,
// traffic groups and intents, in Kubernetes' shape (metadata.name, labels,
// resourceVersion, spec), with the validation that gives every error a field path.
package model

import "time"

// Metadata is the subset of Kubernetes' ObjectMeta the controller keeps.
type Metadata struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// ResourceVersion is set by the store; an update that carries one is refused
	// with a conflict unless it matches the stored object's.
	ResourceVersion   string    `json:"resourceVersion,omitempty"`
	CreationTimestamp time.Time `json:"creationTimestamp,omitzero"`
}

// Project groups clusters and apps; names below it are unique within it.
type Project struct {
	Metadata Metadata    `json:"metadata"`
	Spec     ProjectSpec `json:"spec"`
}

// ProjectSpec describes a project.
type ProjectSpec struct {
	Description string `json:"description,omitempty"`
}

// Mesh names of a cluster's service mesh.
const (
	MeshIstio = "istio"
	MeshNone  = "none"
)

// Cluster is a place workloads run and how the controller reaches it.
type Cluster struct {
	Metadata Metadata    `json:"metadata"`
	Spec     ClusterSpec `json:"spec"`
}

// ClusterSpec says which mesh a cluster runs and how to reach it: a Kubernetes API
// (Kubeconfig), a weft site (Weft), or both.
type ClusterSpec struct {
	Mesh     string `json:"mesh,omitempty"`     // istio or none (default none)
	Locality string `json:"locality,omitempty"` // region/zone[/subzone]
	// Network is the Istio network name; it defaults to the cluster's name.
	Network         string    `json:"network,omitempty"`
	EastWestGateway *Endpoint `json:"eastWestGateway,omitempty"`
	// IngressGateway is the address external clients and DNS records use.
	IngressGateway *Endpoint `json:"ingressGateway,omitempty"`
	// Domain completes an intent's externalPrefix into a host name.
	Domain     string    `json:"domain,omitempty"`
	Kubeconfig string    `json:"kubeconfig,omitempty"`
	Weft       *WeftSite `json:"weft,omitempty"`
}

// Endpoint is an address and port.
type Endpoint struct {
	Address string `json:"address"`
	Port    int    `json:"port,omitempty"`
}

// WeftSite is a weft site's admin API and the bearer token to use it, or
// the Namespace where the site runs in Kubernetes mode: then its resources
// are server-side applied there as CRs, through the cluster's Kubeconfig.
type WeftSite struct {
	Admin     string `json:"admin"`
	Token     string `json:"token,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// App is one version of an application: which services run in which clusters.
type App struct {
	Metadata Metadata `json:"metadata"`
	Spec     AppSpec  `json:"spec"`
}

// AppSpec lists an app version's services.
type AppSpec struct {
	Version  string    `json:"version"`
	Services []Service `json:"services,omitempty"`
}

// Service is a Kubernetes service of an app and the clusters it runs in.
type Service struct {
	Name           string   `json:"name"`
	Namespace      string   `json:"namespace"`
	Port           int      `json:"port"`
	Protocol       string   `json:"protocol,omitempty"` // HTTP, HTTP2, GRPC, TCP, TLS (default TCP)
	ServiceAccount string   `json:"serviceAccount,omitempty"`
	Clusters       []string `json:"clusters"`
}

// TrafficGroup holds the intents that are planned and applied together.
type TrafficGroup struct {
	Metadata Metadata         `json:"metadata"`
	Spec     TrafficGroupSpec `json:"spec"`
}

// TrafficGroupSpec describes a traffic group.
type TrafficGroupSpec struct {
	Description string `json:"description,omitempty"`
}

// Intent types.
const (
	TypeIntercluster     = "intercluster"
	TypeIntracluster     = "intracluster"
	TypeExternalOutbound = "external-outbound"
	TypeExternalInbound  = "external-inbound"
	TypeDNSProvider      = "dns-provider"
)

// Intent says what may talk to what; its Type selects which fields apply.
type Intent struct {
	Metadata Metadata   `json:"metadata"`
	Spec     IntentSpec `json:"spec"`
}

// IntentSpec carries the fields of ONAP's traffic controller intents.
//
// For intercluster and intracluster intents Server is the called service and
// Clients name the calling services. For external-outbound, Server is the service
// inside the mesh that calls out and Clients name the external FQDNs (ONAP's
// clientServices). For external-inbound, Server is exposed at ExternalName.
type IntentSpec struct {
	Type     string   `json:"type"`
	Server   string   `json:"server,omitempty"`
	Clients  []Client `json:"clients,omitempty"`
	Protocol string   `json:"protocol,omitempty"` // defaults to the server's
	Port     int      `json:"port,omitempty"`     // defaults to the server's
	// MutualTLS requires Istio mutual TLS (ISTIO_MUTUAL, PeerAuthentication STRICT).
	MutualTLS       bool             `json:"mutualTLS,omitempty"`
	EgressGateway   bool             `json:"egressGateway,omitempty"`
	ExternalPrefix  string           `json:"externalPrefix,omitempty"`
	ExternalName    string           `json:"externalName,omitempty"`
	TLS             *InboundTLS      `json:"tls,omitempty"`
	LoadBalancing   string           `json:"loadBalancing,omitempty"` // ROUND_ROBIN, LEAST_REQUEST, RANDOM, PASSTHROUGH
	CircuitBreaking *CircuitBreaking `json:"circuitBreaking,omitempty"`
	Access          []AccessRule     `json:"access,omitempty"`

	// dns-provider fields.
	Provider        string            `json:"provider,omitempty"` // rfc2136 or external-dns
	DNSServer       string            `json:"dnsServer,omitempty"`
	Zone            string            `json:"zone,omitempty"`
	TSIGKeyName     string            `json:"tsigKeyName,omitempty"`
	TSIGSecret      string            `json:"tsigSecret,omitempty"`
	TSIGAlgorithm   string            `json:"tsigAlgorithm,omitempty"`
	TTL             int               `json:"ttl,omitempty"`
	ClusterSelector map[string]string `json:"clusterSelector,omitempty"`
	// Namespace is where external-dns DNSEndpoint objects are created.
	Namespace string `json:"namespace,omitempty"`
}

// Client is a calling service (by name) or, for external-outbound, an external host.
type Client struct {
	Service string `json:"service,omitempty"`
	FQDN    string `json:"fqdn,omitempty"`
	Port    int    `json:"port,omitempty"`
}

// InboundTLS is the ingress gateway's TLS for an external-inbound intent.
type InboundTLS struct {
	Mode           string `json:"mode"` // SIMPLE or MUTUAL
	CredentialName string `json:"credentialName"`
}

// CircuitBreaking maps onto Istio's connectionPool and outlierDetection.
// ConsecutiveErrors becomes outlierDetection.consecutive5xxErrors: Istio deprecated
// consecutiveErrors, which EMCO still emitted.
type CircuitBreaking struct {
	MaxConnections           int    `json:"maxConnections,omitempty"`
	HTTP1MaxPendingRequests  int    `json:"http1MaxPendingRequests,omitempty"`
	HTTP2MaxRequests         int    `json:"http2MaxRequests,omitempty"`
	MaxRequestsPerConnection int    `json:"maxRequestsPerConnection,omitempty"`
	ConsecutiveErrors        int    `json:"consecutiveErrors,omitempty"`
	Interval                 string `json:"interval,omitempty"`
	BaseEjectionTime         string `json:"baseEjectionTime,omitempty"`
	MaxEjectionPercent       int    `json:"maxEjectionPercent,omitempty"`
}

// AccessRule limits which requests clients may make; empty lists allow all.
type AccessRule struct {
	Methods []string `json:"methods,omitempty"`
	Paths   []string `json:"paths,omitempty"`
}

// ServiceByName returns the app's service called name, or nil.
func (a *App) ServiceByName(name string) *Service {
	for i := range a.Spec.Services {
		if a.Spec.Services[i].Name == name {
			return &a.Spec.Services[i]
		}
	}
	return nil
}

// Object is implemented by every API object, so that the store and the API can
// treat them alike.
type Object interface {
	Meta() *Metadata
	Validate() error
}

// Meta returns the object's metadata.
func (p *Project) Meta() *Metadata { return &p.Metadata }

// Meta returns the object's metadata.
func (c *Cluster) Meta() *Metadata { return &c.Metadata }

// Meta returns the object's metadata.
func (a *App) Meta() *Metadata { return &a.Metadata }

// Meta returns the object's metadata.
func (g *TrafficGroup) Meta() *Metadata { return &g.Metadata }

// Meta returns the object's metadata.
func (in *Intent) Meta() *Metadata { return &in.Metadata }

var (
	_ Object = (*Project)(nil)
	_ Object = (*Cluster)(nil)
	_ Object = (*App)(nil)
	_ Object = (*TrafficGroup)(nil)
	_ Object = (*Intent)(nil)
)
