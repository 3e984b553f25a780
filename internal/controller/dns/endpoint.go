package dns

import (
	"fmt"
	"math"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// DNSEndpoint's group, version and kind (external-dns).
const (
	EndpointAPIVersion = "externaldns.k8s.io/v1alpha1"
	EndpointKind       = "DNSEndpoint"
)

// EndpointsOf decodes the spec.endpoints of a DNSEndpoint object. Values are
// checked for type here and for meaning by Client.Apply.
func EndpointsOf(obj *unstructured.Unstructured) ([]Endpoint, error) {
	if obj.GetAPIVersion() != EndpointAPIVersion || obj.GetKind() != EndpointKind {
		return nil, fmt.Errorf("%w: %s %s is not a %s %s", ErrInvalidEndpoint, obj.GetAPIVersion(), obj.GetKind(), EndpointAPIVersion, EndpointKind)
	}
	raw, _, err := unstructured.NestedSlice(obj.Object, "spec", "endpoints")
	if err != nil {
		return nil, fmt.Errorf("%w: spec.endpoints: %v", ErrInvalidEndpoint, err)
	}
	eps := make([]Endpoint, 0, len(raw))
	for i, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: spec.endpoints[%d] is not an object", ErrInvalidEndpoint, i)
		}
		var ep Endpoint
		var err error
		if ep.DNSName, _, err = unstructured.NestedString(m, "dnsName"); err == nil {
			ep.RecordType, _, err = unstructured.NestedString(m, "recordType")
		}
		if err == nil {
			ep.Targets, _, err = unstructured.NestedStringSlice(m, "targets")
		}
		if err == nil {
			ep.TTL, err = ttlOf(m["recordTTL"])
		}
		if err != nil {
			return nil, fmt.Errorf("%w: spec.endpoints[%d]: %v", ErrInvalidEndpoint, i, err)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// ttlOf accepts the integer forms JSON decoders produce (int64 from
// Kubernetes' decoder, float64 from encoding/json).
func ttlOf(v any) (uint32, error) {
	var f float64
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int64:
		f = float64(n)
	case float64:
		f = n
	default:
		return 0, fmt.Errorf("recordTTL: %T is not a number", v)
	}
	if f < 0 || f > math.MaxInt32 || f != math.Trunc(f) {
		return 0, fmt.Errorf("recordTTL: %v out of range", v)
	}
	return uint32(f), nil
}
