package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every validation and decoding error.
var ErrInvalid = errors.New("invalid")

// FieldError names the field that failed validation, as a JSON path (spec.port,
// spec.clients[0].service), so that the API can return it.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap makes every FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	hostRE  = regexp.MustCompile(`^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	labelRE = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	valueRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	pathRE  = regexp.MustCompile(`^/[\x21-\x7e]*$`)
)

// Names become parts of Kubernetes object names and URL segments, so they are
// DNS-1123 labels.
func validateName(field, name string) error {
	if !nameRE.MatchString(name) {
		return fieldErr(field, "%q must be a DNS label: lower-case letters, digits and '-', at most 63 characters", name)
	}
	return nil
}

func validateMeta(m *Metadata) error {
	if err := validateName("metadata.name", m.Name); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		if !labelRE.MatchString(k) {
			return fieldErr("metadata.labels", "%q is not a valid label key", k)
		}
		if !valueRE.MatchString(m.Labels[k]) {
			return fieldErr("metadata.labels."+k, "%q is not a valid label value", m.Labels[k])
		}
	}
	return nil
}

func validatePort(field string, p int, required bool) error {
	if p == 0 && !required {
		return nil
	}
	if p < 1 || p > 65535 {
		return fieldErr(field, "%d is not a port number", p)
	}
	return nil
}

func validateHost(field, h string) error {
	if len(h) > 253 || !hostRE.MatchString(h) {
		return fieldErr(field, "%q is not a DNS name", h)
	}
	return nil
}

var protocols = []string{"HTTP", "HTTP2", "GRPC", "TCP", "TLS", "HTTPS"}

func validateProtocol(field, p string) error {
	if p != "" && !slices.Contains(protocols, p) {
		return fieldErr(field, "%q is not one of %s", p, strings.Join(protocols, ", "))
	}
	return nil
}

// Validate checks a project.
func (p *Project) Validate() error { return validateMeta(&p.Metadata) }

// Validate checks a traffic group.
func (g *TrafficGroup) Validate() error { return validateMeta(&g.Metadata) }

// Validate checks a cluster.
func (c *Cluster) Validate() error {
	if err := validateMeta(&c.Metadata); err != nil {
		return err
	}
	s := &c.Spec
	switch s.Mesh {
	case "", MeshNone, MeshIstio:
	default:
		return fieldErr("spec.mesh", "%q is not istio or none", s.Mesh)
	}
	if s.Locality != "" {
		parts := strings.Split(s.Locality, "/")
		if len(parts) > 3 || slices.Contains(parts, "") {
			return fieldErr("spec.locality", "%q is not region/zone[/subzone]", s.Locality)
		}
	}
	for _, g := range []struct {
		field string
		ep    *Endpoint
	}{{"spec.eastWestGateway", s.EastWestGateway}, {"spec.ingressGateway", s.IngressGateway}} {
		if g.ep == nil {
			continue
		}
		if net.ParseIP(g.ep.Address) == nil && validateHost(g.field+".address", g.ep.Address) != nil {
			return fieldErr(g.field+".address", "%q is not an IP address or DNS name", g.ep.Address)
		}
		if err := validatePort(g.field+".port", g.ep.Port, false); err != nil {
			return err
		}
	}
	if s.Mesh == MeshIstio && s.EastWestGateway != nil && s.EastWestGateway.Port == 0 {
		s.EastWestGateway.Port = 15443
	}
	if s.Domain != "" {
		if err := validateHost("spec.domain", s.Domain); err != nil {
			return err
		}
	}
	if s.Weft != nil && s.Weft.Namespace != "" {
		switch {
		case s.Weft.Admin != "":
			return fieldErr("spec.weft", "set admin (a site reached by its admin API) or namespace (a site in Kubernetes mode), not both")
		case s.Kubeconfig == "":
			return fieldErr("spec.weft.namespace", "a site in Kubernetes mode gets its resources through the cluster's API: set spec.kubeconfig")
		}
		return validateName("spec.weft.namespace", s.Weft.Namespace)
	}
	if s.Weft != nil {
		// A site's admin.addr holds host:port; taking it as it is spares
		// the user from adding the scheme the site serves anyway.
		if !strings.Contains(s.Weft.Admin, "://") {
			if _, _, err := net.SplitHostPort(s.Weft.Admin); err == nil {
				s.Weft.Admin = "http://" + s.Weft.Admin
			}
		}
		u, err := url.Parse(s.Weft.Admin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fieldErr("spec.weft.admin", "%q is not an http(s) URL or host:port (the site's admin.addr)", s.Weft.Admin)
		}
	}
	return nil
}

// Validate checks an app version.
func (a *App) Validate() error {
	if err := validateMeta(&a.Metadata); err != nil {
		return err
	}
	if err := validateName("spec.version", a.Spec.Version); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range a.Spec.Services {
		s := &a.Spec.Services[i]
		f := fmt.Sprintf("spec.services[%d]", i)
		if err := validateName(f+".name", s.Name); err != nil {
			return err
		}
		if seen[s.Name] {
			return fieldErr(f+".name", "service %q is listed twice", s.Name)
		}
		seen[s.Name] = true
		if err := validateName(f+".namespace", s.Namespace); err != nil {
			return err
		}
		if err := validatePort(f+".port", s.Port, true); err != nil {
			return err
		}
		if s.Protocol == "" {
			s.Protocol = "TCP"
		}
		if err := validateProtocol(f+".protocol", s.Protocol); err != nil {
			return err
		}
		if s.ServiceAccount == "" {
			s.ServiceAccount = "default"
		}
		if err := validateName(f+".serviceAccount", s.ServiceAccount); err != nil {
			return err
		}
		if len(s.Clusters) == 0 {
			return fieldErr(f+".clusters", "a service must run in at least one cluster")
		}
		for j, c := range s.Clusters {
			if err := validateName(fmt.Sprintf("%s.clusters[%d]", f, j), c); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	lbPolicies     = []string{"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH"}
	tsigAlgorithms = []string{"hmac-sha256", "hmac-sha512", "hmac-sha1", "hmac-sha224", "hmac-sha384"}
)

// Validate checks an intent's fields for its type. Whether the services it names
// exist is checked when it is compiled, since the app may change after.
func (in *Intent) Validate() error {
	if err := validateMeta(&in.Metadata); err != nil {
		return err
	}
	s := &in.Spec
	switch s.Type {
	case TypeIntercluster, TypeIntracluster, TypeExternalOutbound, TypeExternalInbound:
		if err := validateName("spec.server", s.Server); err != nil {
			return err
		}
	case TypeDNSProvider:
		return s.validateDNS()
	default:
		return fieldErr("spec.type", "%q is not one of intercluster, intracluster, external-outbound, external-inbound, dns-provider", s.Type)
	}
	if err := validateProtocol("spec.protocol", s.Protocol); err != nil {
		return err
	}
	if err := validatePort("spec.port", s.Port, false); err != nil {
		return err
	}
	switch s.Type {
	case TypeIntercluster, TypeIntracluster:
		if len(s.Clients) == 0 {
			return fieldErr("spec.clients", "at least one client service is required")
		}
		for i, c := range s.Clients {
			f := fmt.Sprintf("spec.clients[%d]", i)
			if c.FQDN != "" {
				return fieldErr(f+".fqdn", "only external-outbound intents name external hosts")
			}
			if err := validateName(f+".service", c.Service); err != nil {
				return err
			}
		}
	case TypeExternalOutbound:
		if len(s.Clients) == 0 {
			return fieldErr("spec.clients", "at least one external host is required")
		}
		for i, c := range s.Clients {
			f := fmt.Sprintf("spec.clients[%d]", i)
			if c.Service != "" {
				return fieldErr(f+".service", "external-outbound clients are external hosts (fqdn)")
			}
			if err := validateHost(f+".fqdn", c.FQDN); err != nil {
				return err
			}
			if err := validatePort(f+".port", c.Port, false); err != nil {
				return err
			}
		}
	case TypeExternalInbound:
		if s.ExternalName == "" && s.ExternalPrefix == "" {
			return fieldErr("spec.externalName", "external-inbound needs externalName or externalPrefix")
		}
		if s.ExternalName != "" {
			if err := validateHost("spec.externalName", s.ExternalName); err != nil {
				return err
			}
		}
		if s.ExternalPrefix != "" {
			if err := validateName("spec.externalPrefix", s.ExternalPrefix); err != nil {
				return err
			}
		}
		if s.TLS != nil {
			if s.TLS.Mode != "SIMPLE" && s.TLS.Mode != "MUTUAL" {
				return fieldErr("spec.tls.mode", "%q is not SIMPLE or MUTUAL", s.TLS.Mode)
			}
			if s.TLS.CredentialName == "" {
				return fieldErr("spec.tls.credentialName", "a TLS ingress needs the secret holding its certificate")
			}
		}
	}
	if s.LoadBalancing != "" && !slices.Contains(lbPolicies, s.LoadBalancing) {
		return fieldErr("spec.loadBalancing", "%q is not one of %s", s.LoadBalancing, strings.Join(lbPolicies, ", "))
	}
	if cb := s.CircuitBreaking; cb != nil {
		if err := cb.validate(); err != nil {
			return err
		}
	}
	for i, r := range s.Access {
		for j, m := range r.Methods {
			if m == "" || strings.ToUpper(m) != m || strings.ContainsAny(m, " /") {
				return fieldErr(fmt.Sprintf("spec.access[%d].methods[%d]", i, j), "%q is not an upper-case HTTP method", m)
			}
		}
		for j, p := range r.Paths {
			if !pathRE.MatchString(p) {
				return fieldErr(fmt.Sprintf("spec.access[%d].paths[%d]", i, j), "%q is not an absolute path", p)
			}
		}
	}
	return nil
}

func (cb *CircuitBreaking) validate() error {
	for _, n := range []struct {
		field string
		v     int
	}{
		{"maxConnections", cb.MaxConnections}, {"http1MaxPendingRequests", cb.HTTP1MaxPendingRequests},
		{"http2MaxRequests", cb.HTTP2MaxRequests}, {"maxRequestsPerConnection", cb.MaxRequestsPerConnection},
		{"consecutiveErrors", cb.ConsecutiveErrors},
	} {
		if n.v < 0 || n.v > 1<<31-1 {
			return fieldErr("spec.circuitBreaking."+n.field, "%d is out of range", n.v)
		}
	}
	if cb.MaxEjectionPercent < 0 || cb.MaxEjectionPercent > 100 {
		return fieldErr("spec.circuitBreaking.maxEjectionPercent", "%d is not a percentage", cb.MaxEjectionPercent)
	}
	for _, d := range []struct{ field, v string }{{"interval", cb.Interval}, {"baseEjectionTime", cb.BaseEjectionTime}} {
		if d.v == "" {
			continue
		}
		// Istio refuses durations under a millisecond.
		if v, err := time.ParseDuration(d.v); err != nil || v < time.Millisecond {
			return fieldErr("spec.circuitBreaking."+d.field, "%q is not a duration of at least 1ms", d.v)
		}
	}
	return nil
}

func (s *IntentSpec) validateDNS() error {
	switch s.Provider {
	case "rfc2136":
		if _, _, err := net.SplitHostPort(s.DNSServer); err != nil {
			return fieldErr("spec.dnsServer", "%q is not host:port", s.DNSServer)
		}
		if s.TSIGKeyName != "" || s.TSIGSecret != "" {
			if s.TSIGKeyName == "" || s.TSIGSecret == "" {
				return fieldErr("spec.tsigSecret", "TSIG needs both tsigKeyName and tsigSecret")
			}
			if s.TSIGAlgorithm == "" {
				s.TSIGAlgorithm = "hmac-sha256"
			}
			if !slices.Contains(tsigAlgorithms, s.TSIGAlgorithm) {
				return fieldErr("spec.tsigAlgorithm", "%q is not one of %s", s.TSIGAlgorithm, strings.Join(tsigAlgorithms, ", "))
			}
		}
	case "external-dns":
		if s.Namespace == "" {
			s.Namespace = "default"
		}
		if err := validateName("spec.namespace", s.Namespace); err != nil {
			return err
		}
	default:
		return fieldErr("spec.provider", "%q is not rfc2136 or external-dns", s.Provider)
	}
	if err := validateHost("spec.zone", strings.TrimSuffix(s.Zone, ".")); err != nil {
		return err
	}
	if s.TTL < 0 || s.TTL > 1<<31-1 {
		return fieldErr("spec.ttl", "%d is out of range", s.TTL)
	}
	if s.TTL == 0 {
		s.TTL = 60
	}
	for _, k := range slices.Sorted(maps.Keys(s.ClusterSelector)) {
		if !labelRE.MatchString(k) {
			return fieldErr("spec.clusterSelector", "%q is not a valid label key", k)
		}
	}
	return nil
}

// MaxBody bounds a decoded body; larger ones are refused before parsing.
const MaxBody = 1 << 20

// Decode reads one JSON body into v strictly (unknown fields are errors) and
// returns errors that wrap ErrInvalid and, where the field is known, are
// *FieldError with its path.
func Decode(data []byte, v any) error {
	if len(data) > MaxBody {
		return fieldErr("", "the body is larger than %d bytes", MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return fieldErr(te.Field, "expected %s, got JSON %s", te.Type, te.Value)
		case errors.As(err, &se):
			return fieldErr("", "malformed JSON at offset %d: %v", se.Offset, err)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// encoding/json names the field but not where it is.
			var generic any
			_ = json.Unmarshal(data, &generic)
			f := unknownField("", generic, reflect.TypeOf(v))
			if f == "" {
				f = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			}
			return fieldErr(f, "unknown field")
		case errors.Is(err, io.EOF):
			return fieldErr("", "the body is empty")
		}
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// Not dec.More, which takes a stray ']' or '}' for the end of a list.
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return fieldErr("", "trailing data after the JSON value at offset %d; send exactly one JSON object", dec.InputOffset())
	}
	return nil
}

// DecodeObject decodes a body into obj with Decode and validates it, which
// also fills in defaults: what the API does with every object it is sent.
func DecodeObject(data []byte, obj Object) error {
	if err := Decode(data, obj); err != nil {
		return err
	}
	return obj.Validate()
}

// DecodeIntent decodes and validates an intent body.
func DecodeIntent(data []byte) (*Intent, error) {
	var in Intent
	if err := DecodeObject(data, &in); err != nil {
		return nil, err
	}
	return &in, nil
}

// unknownField returns the path of the first key in v that type t has no field for.
func unknownField(path string, v any, t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch val := v.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for _, k := range slices.Sorted(maps.Keys(val)) {
				if f := unknownField(join(k), val[k], t.Elem()); f != "" {
					return f
				}
			}
		case reflect.Struct:
			fields := map[string]reflect.Type{}
			for f := range t.Fields() {
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				fields[strings.ToLower(name)] = f.Type
			}
			for _, k := range slices.Sorted(maps.Keys(val)) {
				ft, ok := fields[strings.ToLower(k)] // encoding/json matches names case-insensitively
				if !ok {
					return join(k)
				}
				if f := unknownField(join(k), val[k], ft); f != "" {
					return f
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice {
			for i, e := range val {
				if f := unknownField(fmt.Sprintf("%s[%d]", path, i), e, t.Elem()); f != "" {
					return f
				}
			}
		}
	}
	return ""
}
