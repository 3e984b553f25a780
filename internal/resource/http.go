package resource

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

func (s *ListenerSpec) defaultHTTP() error {
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
