package reconcile

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/controller/dns"
)

func init() { RegisterBackend("rfc2136", newDNSBackend) }

// dnsBackend publishes DNSEndpoint objects in a zone by RFC 2136. The zone
// itself is the record of what exists, through ownership TXT records tagged
// with the target's name, so targets sharing a zone never prune each other.
type dnsBackend struct{ c *dns.Client }

var _ Backend = (*dnsBackend)(nil)

func newDNSBackend(t Target) (Backend, error) {
	if t.DNS == nil {
		return nil, errors.New("rfc2136 target " + t.Name + " has no DNS server")
	}
	c, err := dns.New(dns.Config{
		Server: t.DNS.Server, Zone: t.DNS.Zone, KeyName: t.DNS.TSIGKeyName,
		Secret: t.DNS.TSIGSecret, Algorithm: t.DNS.TSIGAlgorithm, Owner: t.Name,
	})
	if err != nil {
		return nil, fmt.Errorf("rfc2136 target %s: %w", t.Name, err)
	}
	return &dnsBackend{c: c}, nil
}

func (b *dnsBackend) Apply(ctx context.Context, obj *unstructured.Unstructured) error {
	eps, err := dns.EndpointsOf(obj)
	if err != nil {
		return err
	}
	return b.c.Apply(ctx, dns.Resource{Namespace: obj.GetNamespace(), Name: obj.GetName()}, eps)
}

func (b *dnsBackend) Delete(ctx context.Context, ref Ref) error {
	return b.c.Delete(ctx, dns.Resource{Namespace: ref.Namespace, Name: ref.Name})
}

func (b *dnsBackend) Managed(ctx context.Context, _ []Ref) ([]Ref, error) {
	owned, err := b.c.Owned(ctx)
	if err != nil {
		return nil, err
	}
	refs := make([]Ref, len(owned))
	for i, r := range owned {
		refs[i] = Ref{APIVersion: dns.EndpointAPIVersion, Kind: dns.EndpointKind, Namespace: r.Namespace, Name: r.Name}
	}
	return refs, nil
}
