// Package resource defines weft's declarative objects (apiVersion weft.dev/v1alpha1):
// the same YAML is applied with `weft apply -f`, through a site's admin API, by the
// controller, and as CRDs in a cluster. Each CLI verb is a shortcut for one of them.
//
// The Go types here are also the CRDs: controller-gen reads their kubebuilder
// markers and writes deploy/kubernetes/crds and zz_generated.deepcopy.go
// (`go generate ./internal/resource`). A validation added to a Default method
// belongs in a marker too where OpenAPI can say it, so that kubectl and the
// admin API refuse the same specs.
package resource

//go:generate go run -modfile=../../tools/controller-gen/go.mod sigs.k8s.io/controller-tools/cmd/controller-gen object paths=. crd:crdVersions=v1 output:crd:artifacts:config=../../deploy/kubernetes/crds

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// APIVersion is the group/version of every weft resource.
const APIVersion = "weft.dev/v1alpha1"

// Kinds.
const (
	KindAccessToken  = "AccessToken"
	KindLink         = "Link"
	KindListener     = "Listener"
	KindConnector    = "Connector"
	KindTopic        = "Topic"
	KindQueue        = "Queue"
	KindSubscription = "Subscription"
	KindSite         = "Site"
	KindAccessGrant  = "AccessGrant"
)

// Protocols a listener or connector speaks.
const (
	ProtocolTCP  = "tcp"
	ProtocolHTTP = "http"
)

// ManagedByLabel marks objects owned by a controller, so that it can remove what it
// no longer wants without touching what an operator created by hand.
const ManagedByLabel = "weft.dev/managed-by"

// Listener opens a local port at a site; a client connecting there is carried to a
// connector for Address, wherever it is. In Kubernetes mode it also owns a
// Service of its name and port that selects the site's pods.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="Port",type=integer,JSONPath=`.spec.port`
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.spec.protocol`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Listener struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ListenerSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitzero"`
}

// ListenerSpec is the desired state of a Listener.
type ListenerSpec struct {
	// Address is the service address clients reach; default the name.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9._/]{0,251}[A-Za-z0-9])?$`
	Address string `json:"address,omitempty"`
	// Host is the IP address to listen on: default 127.0.0.1, and all
	// addresses (0.0.0.0) in Kubernetes mode.
	// +optional
	Host string `json:"host,omitempty"`
	// Port 0 picks a free port outside Kubernetes; a Kubernetes Service needs
	// a fixed one, so the CRD asks for one.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int `json:"port"`
	// +optional
	// +kubebuilder:validation:Enum=tcp;http
	Protocol string `json:"protocol,omitempty"`
	// Hedge (protocol http) is when a backup copy of an idempotent request
	// is sent: "off" (default), "always", "auto" (after the address's
	// recent p95 latency) or a duration such as "50ms".
	// +optional
	// +kubebuilder:validation:Pattern=`^(off|always|auto|[0-9.]+(ns|us|ms|s|m|h))$`
	Hedge string `json:"hedge,omitempty"`
	// Retries (protocol http) is how many other candidates an idempotent
	// request that failed before any byte of its answer is tried on.
	// Default 2, Istio's default retry attempts.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Retries *int32 `json:"retries,omitempty"`
	// Balance (protocol http) ranks candidates: "cost" (default),
	// "latency" or "cost+latency"; see BalanceCost.
	Balance string `json:"balance,omitempty"`
	// GRPCRetryOn (protocol http) are the gRPC status codes that count as
	// failures of the target, retried when the request is safe: names
	// (cancelled, deadline-exceeded, resource-exhausted, internal,
	// unavailable) or numbers. Default: Envoy's retriable set, all but
	// internal.
	GRPCRetryOn []string `json:"grpcRetryOn,omitempty"`
	// TLSCert and TLSKey (protocol http) are PEM files on the site's host:
	// the listener then serves HTTPS, with ALPN h2 and http/1.1.
	TLSCert string `json:"tlsCert,omitempty"`
	TLSKey  string `json:"tlsKey,omitempty"`
}

// Hedge values of ListenerSpec other than a duration.
const (
	HedgeOff    = "off"
	HedgeAlways = "always"
	HedgeAuto   = "auto"
)

// DefaultRetries is ListenerSpec.Retries when unset.
const DefaultRetries = 2

// Connector says that Address is served at this site by Target (host:port),
// by Host and Port, or, in Kubernetes mode, by the Ready pods that Selector
// matches, on Port.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="Selector",type=string,JSONPath=`.spec.selector`
// +kubebuilder:printcolumn:name="Port",type=integer,JSONPath=`.spec.port`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Connector struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ConnectorSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitzero"`
}

// ConnectorSpec is the desired state of a Connector.
//
// +kubebuilder:validation:XValidation:rule="(has(self.target) ? 1 : 0) + (has(self.host) ? 1 : 0) + (has(self.selector) ? 1 : 0) == 1",message="set exactly one of target, host (with port) and selector (with port)"
// +kubebuilder:validation:XValidation:rule="has(self.target) || has(self.port)",message="host and selector need a port"
type ConnectorSpec struct {
	// Address is the service address served; default the name.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9._/]{0,251}[A-Za-z0-9])?$`
	Address string `json:"address,omitempty"`
	// Target is host:port of the local service.
	// +optional
	Target string `json:"target,omitempty"`
	// Host with Port is Target spelled in two fields.
	// +optional
	Host string `json:"host,omitempty"`
	// Selector picks pods by label (app=orders,tier=web), Kubernetes mode
	// only: each Ready pod's IP on Port is a target.
	// +optional
	Selector string `json:"selector,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int `json:"port,omitempty"`
	// +optional
	// +kubebuilder:validation:Enum=tcp;http
	Protocol string `json:"protocol,omitempty"`
	// Capacity is the relative weight: default 1, and with a selector the
	// number of Ready pods.
	// +optional
	Capacity uint32 `json:"capacity,omitempty"`
	// MaxConnections saturates the connector: new connections overflow elsewhere.
	// With protocol http it also bounds the pooled connections to the target.
	MaxConnections uint32 `json:"maxConnections,omitempty"`
	// MaxPending (protocol http) is how many requests may wait for one of
	// MaxConnections connections before the connector is saturated; it only
	// acts together with MaxConnections (Istio's http1MaxPendingRequests).
	MaxPending uint32 `json:"maxPending,omitempty"`
	// MaxRequests (protocol http) saturates the connector at this many
	// requests in flight (Istio's http2MaxRequests).
	MaxRequests uint32 `json:"maxRequests,omitempty"`
	// Outlier ejects the connector's target after consecutive 5xx answers or
	// connect failures (protocol http). Defaults are Istio's.
	// +optional
	Outlier OutlierSpec `json:"outlier,omitempty"`
	// TargetProtocol (protocol http) is what the target speaks: "auto"
	// (default: follow the client's HTTP version, after probing once what
	// the target accepts), "http1" or "h2c" (HTTP/2; over TLS, h2).
	TargetProtocol string `json:"targetProtocol,omitempty"`
	// TargetTLS (protocol http) is TLS to the target, verified against
	// TargetCA (a PEM file on the site's host; the system roots when
	// empty) for TargetServerName (the target's host when empty).
	TargetTLS        bool   `json:"targetTLS,omitempty"`
	TargetCA         string `json:"targetCA,omitempty"`
	TargetServerName string `json:"targetServerName,omitempty"`
}

// OutlierSpec is Istio's outlierDetection, consecutive-errors flavour.
type OutlierSpec struct {
	// ConsecutiveErrors ejects after this many errors in a row; -1 disables
	// ejection. Default 5.
	ConsecutiveErrors int `json:"consecutiveErrors,omitempty"`
	// Interval of healthy time that forgives one past ejection. Default 10s.
	Interval metav1.Duration `json:"interval,omitempty"`
	// BaseEjection is how long a first ejection lasts; the n-th lasts n
	// times as long. Default 30s.
	BaseEjection metav1.Duration `json:"baseEjection,omitempty"`
	// MaxEjectionPercent caps the share of connectors ejected at once (one
	// may always be). Default 10.
	MaxEjectionPercent int `json:"maxEjectionPercent,omitempty"`
}

// Istio's outlierDetection defaults.
const (
	DefaultOutlierConsecutiveErrors  = 5
	DefaultOutlierInterval           = 10 * time.Second
	DefaultOutlierBaseEjection       = 30 * time.Second
	DefaultOutlierMaxEjectionPercent = 10
)

// Link is a link to another site, made by redeeming an AccessToken issued there.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Peer",type=string,JSONPath=`.status.peerName`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Cost",type=integer,JSONPath=`.spec.cost`
// +kubebuilder:printcolumn:name="RTT",type=string,JSONPath=`.status.rtt`
type Link struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              LinkSpec `json:"spec"`
	// +optional
	Status LinkStatus `json:"status,omitzero"`
}

// LinkSpec is the desired state of a Link. Token is needed only to create it.
type LinkSpec struct {
	// +optional
	Cost uint32 `json:"cost,omitempty"` // default 1
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Token *AccessToken `json:"token,omitempty"`
}

// LinkStatus is what a site reports about one of its links.
type LinkStatus struct {
	Peer     string `json:"peer,omitempty"`     // peer site ID
	PeerName string `json:"peerName,omitempty"` // peer site name
	State    string `json:"state,omitempty"`    // up, connecting, down
	RTT      string `json:"rtt,omitempty"`
	Inbound  bool   `json:"inbound,omitempty"` // the peer redeemed our token
	Error    string `json:"error,omitempty"`
	// Conditions (Kubernetes mode): Ready is the link being up.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AccessToken lets another site create a link to the issuer, once, before it
// expires. Applied to a site, it is redeemed into a Link of its name.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuerName`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.spec.expires`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type AccessToken struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              AccessTokenSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitzero"`
}

// AccessTokenSpec carries what the redeemer needs to reach and trust the issuer.
type AccessTokenSpec struct {
	// +kubebuilder:validation:MinLength=1
	ID string `json:"id"`
	// +kubebuilder:validation:MinLength=1
	Secret  string      `json:"secret"`
	Expires metav1.Time `json:"expires"`
	// +kubebuilder:validation:Minimum=1
	Uses       int    `json:"uses"`
	IssuerID   string `json:"issuerID"`
	IssuerName string `json:"issuerName"`
	// +kubebuilder:validation:MinItems=1
	Addresses []string `json:"addresses"`
	// CA is the issuer's CA certificate, PEM.
	// +kubebuilder:validation:MinLength=1
	CA string `json:"ca"`
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	addressRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9._/]{0,251}[A-Za-z0-9])?$`)
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid resource")

// FieldError is a validation error of one field; it wraps ErrInvalid. The
// admin API answers it with the field's JSON path in its error body.
//
// +kubebuilder:object:generate=false
type FieldError struct {
	Field   string // JSON path, such as spec.port
	Message string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%v: %s: %s", ErrInvalid, e.Field, e.Message) }

func (e *FieldError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// ValidateName checks a metadata.name (a DNS-1123 subdomain).
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return invalid("metadata.name", "%q must be lower-case letters, digits, '-' and '.', at most 253 characters", name)
	}
	return nil
}

// ValidateAddress checks a service or event address.
func ValidateAddress(field, a string) error {
	if !addressRE.MatchString(a) {
		return invalid(field, "%q must be letters, digits, '-', '.', '_' and '/', at most 253 characters", a)
	}
	return nil
}

func validateProtocol(field string, p *string) error {
	switch *p {
	case "":
		*p = ProtocolTCP
	case ProtocolTCP, ProtocolHTTP:
	default:
		return invalid(field, "%q is not tcp or http", *p)
	}
	return nil
}

// Default fills defaults and validates l.
func (l *Listener) Default() error {
	l.APIVersion, l.Kind = APIVersion, KindListener
	if l.Spec.Address == "" {
		l.Spec.Address = l.Name
	}
	if l.Name == "" {
		l.Name = l.Spec.Address
	}
	if err := ValidateName(l.Name); err != nil {
		return err
	}
	if err := ValidateAddress("spec.address", l.Spec.Address); err != nil {
		return err
	}
	if l.Spec.Host == "" {
		l.Spec.Host = "127.0.0.1"
	}
	if net.ParseIP(l.Spec.Host) == nil && l.Spec.Host != "localhost" {
		return invalid("spec.host", "%q is not an IP address", l.Spec.Host)
	}
	if l.Spec.Port < 0 || l.Spec.Port > 65535 {
		return invalid("spec.port", "%d is not a port number", l.Spec.Port)
	}
	if err := validateProtocol("spec.protocol", &l.Spec.Protocol); err != nil {
		return err
	}
	switch l.Spec.Hedge {
	case "":
		l.Spec.Hedge = HedgeOff
	case HedgeOff, HedgeAlways, HedgeAuto:
	default:
		if d, err := time.ParseDuration(l.Spec.Hedge); err != nil || d <= 0 {
			return invalid("spec.hedge", "%q is not off, always, auto or a positive duration", l.Spec.Hedge)
		}
	}
	if l.Spec.Retries == nil {
		r := int32(DefaultRetries)
		l.Spec.Retries = &r
	}
	if *l.Spec.Retries < 0 || *l.Spec.Retries > 10 {
		return invalid("spec.retries", "%d is not between 0 and 10", *l.Spec.Retries)
	}
	return l.Spec.defaultHTTP()
}

// Default fills defaults and validates c.
func (c *Connector) Default() error {
	c.APIVersion, c.Kind = APIVersion, KindConnector
	if c.Spec.Address == "" {
		c.Spec.Address = c.Name
	}
	if c.Name == "" {
		c.Name = c.Spec.Address
	}
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	if err := ValidateAddress("spec.address", c.Spec.Address); err != nil {
		return err
	}
	if err := c.Spec.defaultTarget(); err != nil {
		return err
	}
	if c.Spec.Capacity == 0 {
		c.Spec.Capacity = 1
	}
	if err := validateProtocol("spec.protocol", &c.Spec.Protocol); err != nil {
		return err
	}
	if err := c.Spec.defaultHTTP(); err != nil {
		return err
	}
	return c.Spec.Outlier.defaults()
}

// defaultTarget checks that exactly one of Target, Host and Selector is
// set, and spells Host and Port as Target. A Selector stays: only a site in
// Kubernetes mode resolves it, into one connector per Ready pod.
func (c *ConnectorSpec) defaultTarget() error {
	set := 0
	for _, f := range []string{c.Target, c.Host, c.Selector} {
		if f != "" {
			set++
		}
	}
	if set != 1 {
		return invalid("spec", "set exactly one of target (host:port), host (with port) and selector (with port)")
	}
	if c.Target == "" {
		if c.Port < 1 || c.Port > 65535 {
			return invalid("spec.port", "%d is not a port number (host and selector need one)", c.Port)
		}
		if c.Selector != "" {
			if _, err := labels.Parse(c.Selector); err != nil {
				return invalid("spec.selector", "%q is not a label selector such as app=orders: %v", c.Selector, err)
			}
			return nil
		}
		c.Target, c.Host, c.Port = net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), "", 0
	}
	host, port, err := net.SplitHostPort(c.Target)
	if err != nil || host == "" {
		return invalid("spec.target", "%q is not host:port", c.Target)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return invalid("spec.target", "%q has no valid port", c.Target)
	}
	return nil
}

func (o *OutlierSpec) defaults() error {
	switch {
	case o.ConsecutiveErrors == 0:
		o.ConsecutiveErrors = DefaultOutlierConsecutiveErrors
	case o.ConsecutiveErrors < -1:
		return invalid("spec.outlier.consecutiveErrors", "%d is not positive or -1 (never eject)", o.ConsecutiveErrors)
	}
	for _, d := range []struct {
		field string
		v     *metav1.Duration
		def   time.Duration
	}{
		{"spec.outlier.interval", &o.Interval, DefaultOutlierInterval},
		{"spec.outlier.baseEjection", &o.BaseEjection, DefaultOutlierBaseEjection},
	} {
		switch {
		case d.v.Duration == 0:
			d.v.Duration = d.def
		case d.v.Duration < 0:
			return invalid(d.field, "%v is negative", d.v.Duration)
		}
	}
	switch {
	case o.MaxEjectionPercent == 0:
		o.MaxEjectionPercent = DefaultOutlierMaxEjectionPercent
	case o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100:
		return invalid("spec.outlier.maxEjectionPercent", "%d is not between 1 and 100", o.MaxEjectionPercent)
	}
	return nil
}

// Default fills defaults and validates l.
func (l *Link) Default() error {
	l.APIVersion, l.Kind = APIVersion, KindLink
	if l.Spec.Cost == 0 {
		l.Spec.Cost = 1
	}
	if l.Name != "" {
		if err := ValidateName(l.Name); err != nil {
			return err
		}
	}
	return nil
}

// Default validates t's fields as far as they can be checked without the issuer.
func (t *AccessToken) Default() error {
	t.APIVersion, t.Kind = APIVersion, KindAccessToken
	switch {
	case t.Spec.ID == "" || t.Spec.Secret == "":
		return invalid("spec", "the token has no id or secret")
	case len(t.Spec.Addresses) == 0:
		return invalid("spec.addresses", "the token names no address of the issuer")
	case t.Spec.CA == "":
		return invalid("spec.ca", "the token carries no CA certificate")
	}
	return nil
}

// Decoded is one document of a multi-document YAML or JSON stream.
//
// +kubebuilder:object:generate=false
type Decoded struct {
	Kind   string
	Object Object // *Listener, *Connector, *Link, *AccessToken, *Topic, *Queue, *Subscription, *Bridge, *AddressExport, *AddressImport, *Network or *NetworkAttachment
}

// maxDocument bounds one document so that a huge apply body cannot exhaust memory.
const maxDocument = 1 << 20

// Decode reads every document in r (YAML separated by ---, or JSON), checks its
// apiVersion and kind, and returns the typed, defaulted and validated objects.
// The error names the document (1-based) that failed.
func Decode(r io.Reader) ([]Decoded, error) {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var out []Decoded
	for i := 1; ; i++ {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		if len(doc) > maxDocument {
			return nil, fmt.Errorf("document %d: %w: larger than %d bytes", i, ErrInvalid, maxDocument)
		}
		d, err := decodeOne(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if d != nil {
			out = append(out, *d)
		}
	}
}

func decodeOne(doc []byte) (*Decoded, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if tm.APIVersion == "" && tm.Kind == "" {
		return nil, nil // a comment-only document
	}
	if tm.APIVersion != APIVersion {
		return nil, invalid("apiVersion", "%q is not %s", tm.APIVersion, APIVersion)
	}
	var obj Object
	switch tm.Kind {
	case KindListener:
		obj = &Listener{}
	case KindConnector:
		obj = &Connector{}
	case KindLink:
		obj = &Link{}
	case KindAccessToken:
		obj = &AccessToken{}
	case KindTopic:
		obj = &Topic{}
	case KindQueue:
		obj = &Queue{}
	case KindSubscription:
		obj = &Subscription{}
	case KindBridge:
		obj = &Bridge{}
	case KindAddressExport:
		obj = &AddressExport{}
	case KindAddressImport:
		obj = &AddressImport{}
	case KindNetwork:
		obj = &Network{}
	case KindNetworkAttachment:
		obj = &NetworkAttachment{}
	default:
		return nil, invalid("kind", "%q is not one of Listener, Connector, Link, AccessToken, Topic, Queue, Subscription, Bridge, AddressExport, AddressImport, Network, NetworkAttachment", tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := obj.Default(); err != nil {
		return nil, err
	}
	return &Decoded{Kind: tm.Kind, Object: obj}, nil
}

// Event delivery modes.
const (
	DeliveryVolatile  = "volatile"  // at most once, never stored
	DeliveryPersisted = "persisted" // at least once, stored before it is accepted
)

// Topic is a multicast event address: every subscription anywhere gets each
// event. Its name is the subject publishers use.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Delivery",type=string,JSONPath=`.spec.delivery`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type Topic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              TopicSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitzero"`
}

// TopicSpec is the desired state of a Topic.
type TopicSpec struct {
	// +optional
	// +kubebuilder:validation:Enum=volatile;persisted
	Delivery string `json:"delivery,omitempty"` // volatile (default) or persisted
	// +optional
	Retention string `json:"retention,omitempty"` // a Go duration, default 24h
}

// Queue is an anycast event address: each event goes to one consumer, the
// nearest with capacity first.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Delivery",type=string,JSONPath=`.spec.delivery`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type Queue struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              QueueSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitzero"`
}

// QueueSpec is the desired state of a Queue.
type QueueSpec struct {
	// +optional
	// +kubebuilder:validation:Enum=volatile;persisted
	Delivery string `json:"delivery,omitempty"` // volatile (default) or persisted
}

// Subscription pushes the events of a topic pattern or a queue to a sink URL
// in CloudEvents binary mode, with Knative's retry and dead-letter contract.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.spec.topic`
// +kubebuilder:printcolumn:name="Queue",type=string,JSONPath=`.spec.queue`
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=`.spec.sink`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:validation:XValidation:rule="has(self.spec.topic) != has(self.spec.queue)",message="set exactly one of spec.topic and spec.queue"
type Subscription struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              SubscriptionSpec `json:"spec"`
	// +optional
	Status Status `json:"status,omitzero"`
}

// SubscriptionSpec is the desired state of a Subscription. Exactly one of
// Topic (a pattern with '*' and '>') and Queue is set.
type SubscriptionSpec struct {
	// +optional
	Topic string `json:"topic,omitempty"`
	// +optional
	Queue string `json:"queue,omitempty"`
	// +kubebuilder:validation:Pattern=`^https?://.+`
	Sink string `json:"sink"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Retry int `json:"retry,omitempty"` // attempts after the first, default 3
	// +optional
	// +kubebuilder:validation:Enum=exponential;linear
	Backoff string `json:"backoff,omitempty"` // exponential (default) or linear
	// +optional
	BackoffDelay string `json:"backoffDelay,omitempty"` // a Go duration, default 500ms
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://.+`
	DeadLetter string `json:"deadLetter,omitempty"` // sink URL for events that failed
}

func validateDelivery(field string, d *string, allowed ...string) error {
	if *d == "" {
		*d = DeliveryVolatile
	}
	if !slices.Contains(allowed, *d) {
		return invalid(field, "%q is not one of %s", *d, strings.Join(allowed, ", "))
	}
	return nil
}

func validateDuration(field string, d *string, def string) error {
	if *d == "" {
		*d = def
	}
	if v, err := time.ParseDuration(*d); err != nil || v <= 0 {
		return invalid(field, "%q is not a positive duration such as %s", *d, def)
	}
	return nil
}

// Default fills defaults and validates t.
func (t *Topic) Default() error {
	t.APIVersion, t.Kind = APIVersion, KindTopic
	if err := ValidateName(t.Name); err != nil {
		return err
	}
	if err := validateDelivery("spec.delivery", &t.Spec.Delivery, DeliveryVolatile, DeliveryPersisted); err != nil {
		return err
	}
	return validateDuration("spec.retention", &t.Spec.Retention, "24h")
}

// Default fills defaults and validates q.
func (q *Queue) Default() error {
	q.APIVersion, q.Kind = APIVersion, KindQueue
	if err := ValidateName(q.Name); err != nil {
		return err
	}
	return validateDelivery("spec.delivery", &q.Spec.Delivery, DeliveryVolatile, DeliveryPersisted)
}

// Default fills defaults and validates s.
func (s *Subscription) Default() error {
	s.APIVersion, s.Kind = APIVersion, KindSubscription
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if (s.Spec.Topic == "") == (s.Spec.Queue == "") {
		return invalid("spec", "set exactly one of topic and queue")
	}
	for field, u := range map[string]string{"spec.sink": s.Spec.Sink, "spec.deadLetter": s.Spec.DeadLetter} {
		if u == "" && field == "spec.deadLetter" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return invalid(field, "%q is not an http(s) URL", u)
		}
	}
	if s.Spec.Retry < 0 || s.Spec.Retry > 100 {
		return invalid("spec.retry", "%d is not between 0 and 100", s.Spec.Retry)
	}
	switch s.Spec.Backoff {
	case "":
		s.Spec.Backoff = "exponential"
	case "exponential", "linear":
	default:
		return invalid("spec.backoff", "%q is not exponential or linear", s.Spec.Backoff)
	}
	return validateDuration("spec.backoffDelay", &s.Spec.BackoffDelay, "500ms")
}
