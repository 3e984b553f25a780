// Package externaldns renders dns-provider intents: the external names of the
// traffic group's external-inbound intents become external-dns DNSEndpoint
// objects, delivered either to the clusters (provider external-dns, where an
// external-dns instance with the CRD source publishes them) or straight to an
// RFC 2136 server (provider rfc2136).
package externaldns

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"weft.dev/weft/internal/controller/model"
	"weft.dev/weft/internal/controller/render"
	"weft.dev/weft/internal/controller/render/istio"
)

// DNSEndpoint's group, version and kind.
const (
	APIVersion = "externaldns.k8s.io/v1alpha1"
	Kind       = "DNSEndpoint"
)

func init() { render.Register("externaldns", Renderer{}) }

// Renderer renders dns-provider intents.
type Renderer struct{}

var _ render.Renderer = Renderer{}

// record is one name and the addresses it resolves to.
type record struct {
	name    string
	targets []string
}

// Render implements render.Renderer.
func (Renderer) Render(in *render.Input) ([]render.Placement, error) {
	var out []render.Placement
	for _, it := range in.Intents {
		if it.Spec.Type != model.TypeDNSProvider {
			continue
		}
		perCluster, err := records(in, it)
		if err != nil {
			return nil, err
		}
		labels := map[string]string{render.IntentLabel: it.Metadata.Name}
		switch it.Spec.Provider {
		case "external-dns":
			// Each cluster publishes its own ingress address for the names it serves.
			for _, c := range slices.Sorted(maps.Keys(perCluster)) {
				for _, r := range perCluster[c] {
					u := endpoint(it, it.Spec.Namespace, r, labels)
					out = append(out, render.Placement{Kind: render.TargetKubernetes, Cluster: c, Object: u})
				}
			}
		case "rfc2136":
			merged := map[string][]string{}
			for _, c := range slices.Sorted(maps.Keys(perCluster)) {
				for _, r := range perCluster[c] {
					merged[r.name] = append(merged[r.name], r.targets...)
				}
			}
			dns := &render.DNSServer{Server: it.Spec.DNSServer, Zone: it.Spec.Zone, TSIGKeyName: it.Spec.TSIGKeyName,
				TSIGSecret: it.Spec.TSIGSecret, TSIGAlgorithm: it.Spec.TSIGAlgorithm}
			for _, name := range slices.Sorted(maps.Keys(merged)) {
				u := endpoint(it, "", record{name, merged[name]}, labels)
				out = append(out, render.Placement{Kind: render.TargetRFC2136, DNSKey: it.Metadata.Name, DNS: dns, Object: u})
			}
		}
	}
	return out, nil
}

// records finds, per selected cluster, the exposed names in the intent's zone and
// the cluster's ingress address.
func records(in *render.Input, dnsIntent *model.Intent) (map[string][]record, error) {
	zone := strings.TrimSuffix(dnsIntent.Spec.Zone, ".")
	out := map[string][]record{}
	for _, it := range in.Intents {
		if it.Spec.Type != model.TypeExternalInbound {
			continue
		}
		server, err := render.Server(in, it)
		if err != nil {
			return nil, err
		}
		clusters, err := render.Clusters(in, it, "spec.server", server.Clusters, func(c *model.Cluster) bool {
			return selected(dnsIntent.Spec.ClusterSelector, c.Metadata.Labels) && c.Spec.IngressGateway != nil
		})
		if err != nil {
			return nil, err
		}
		for _, c := range clusters {
			host, err := istio.ExternalHost(it, c)
			if err != nil {
				return nil, err
			}
			if host != zone && !strings.HasSuffix(host, "."+zone) {
				continue // another provider's zone
			}
			name := c.Metadata.Name
			out[name] = append(out[name], record{host, []string{c.Spec.IngressGateway.Address}})
		}
	}
	return out, nil
}

func selected(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// endpoint builds a DNSEndpoint without external-dns's Go module, whose
// dependencies are far larger than this one object.
func endpoint(it *model.Intent, ns string, r record, labels map[string]string) *render.Object {
	targets := slices.Clone(r.targets)
	slices.Sort(targets)
	targets = slices.Compact(targets)
	recordType := "A"
	for _, t := range targets {
		if ip := net.ParseIP(t); ip == nil {
			recordType = "CNAME"
		} else if ip.To4() == nil {
			recordType = "AAAA"
		}
	}
	ts := make([]any, len(targets))
	for i, t := range targets {
		ts[i] = t
	}
	return &render.Object{
		APIVersion: APIVersion, Kind: Kind, Namespace: ns, Labels: labels,
		Name: fmt.Sprintf("%s-%s", it.Metadata.Name, strings.ReplaceAll(r.name, ".", "-")),
		Spec: map[string]any{"endpoints": []any{map[string]any{
			"dnsName": r.name, "recordType": recordType, "recordTTL": int64(it.Spec.TTL), "targets": ts,
		}}},
	}
}
