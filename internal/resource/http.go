package resource

import (
	"strconv"
	"strings"
)

// Balance values of ListenerSpec.
const (
	// BalanceCost prefers the cheapest path tier; latency ranks only
	// within it.
	BalanceCost = "cost"
	// BalanceLatency ranks every healthy candidate by measured latency,
	// whatever its path cost.
	BalanceLatency = "latency"
	// BalanceCostLatency ranks by latency plus a penalty per unit of path
	// cost.
	BalanceCostLatency = "cost+latency"
)

// TargetProtocol values of ConnectorSpec.
const (
	TargetProtocolAuto  = "auto"
	TargetProtocolHTTP1 = "http1"
	TargetProtocolH2C   = "h2c"
)

// grpcCodeNames are the gRPC codes GRPCRetryOn names: those Envoy's
// retry_on knows for gRPC.
var grpcCodeNames = map[string]int{
	"cancelled":          1,
	"deadline-exceeded":  4,
	"resource-exhausted": 8,
	"internal":           13,
	"unavailable":        14,
}

// GRPCCode returns the gRPC status code an entry of GRPCRetryOn names (a
// name or a number from 1 to 16).
func GRPCCode(s string) (int, bool) {
	if c, ok := grpcCodeNames[strings.ToLower(s)]; ok {
		return c, true
	}
	c, err := strconv.Atoi(s)
	return c, err == nil && c >= 1 && c <= 16
}

func (s *ListenerSpec) defaultHTTP() error {
	for _, c := range s.GRPCRetryOn {
		if _, ok := GRPCCode(c); !ok {
			return invalid("spec.grpcRetryOn", "%q is not cancelled, deadline-exceeded, resource-exhausted, internal, unavailable or a code from 1 to 16", c)
		}
	}
	switch s.Balance {
	case "":
		if s.Protocol == ProtocolHTTP {
			s.Balance = BalanceCost
		}
	case BalanceCost, BalanceLatency, BalanceCostLatency:
	default:
		return invalid("spec.balance", "%q is not cost, latency or cost+latency", s.Balance)
	}
	if s.Balance != "" && s.Balance != BalanceCost && s.Protocol != ProtocolHTTP {
		return invalid("spec.balance", "%q needs protocol http", s.Balance)
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return invalid("spec.tlsKey", "tlsCert and tlsKey go together")
	}
	if s.TLSCert != "" && s.Protocol != ProtocolHTTP {
		return invalid("spec.tlsCert", "TLS is served by protocol http listeners only")
	}
	return nil
}

func (s *ConnectorSpec) defaultHTTP() error {
	http := s.Protocol == ProtocolHTTP
	switch s.TargetProtocol {
	case "":
		if http {
			s.TargetProtocol = TargetProtocolAuto
		}
	case TargetProtocolAuto, TargetProtocolHTTP1, TargetProtocolH2C:
	default:
		return invalid("spec.targetProtocol", "%q is not auto, http1 or h2c", s.TargetProtocol)
	}
	switch {
	case s.TargetProtocol != "" && s.TargetProtocol != TargetProtocolAuto && !http:
		return invalid("spec.targetProtocol", "needs protocol http")
	case s.TargetTLS && !http:
		return invalid("spec.targetTLS", "needs protocol http")
	case !s.TargetTLS && (s.TargetCA != "" || s.TargetServerName != ""):
		return invalid("spec.targetTLS", "targetCA and targetServerName need targetTLS")
	}
	return nil
}
