package balance

import "strconv"

// Kind is the unit of work a Start/Done pair counts.
type Kind int

const (
	// Connection is a TCP connection (per-connection balancing). It counts
	// against Limits.MaxConnections.
	Connection Kind = iota
	// Request is an HTTP request (per-request balancing). It counts against
	// Limits.MaxRequests and, beyond MaxConnections, Limits.MaxPending.
	Request
)

func (k Kind) String() string {
	switch k {
	case Connection:
		return "connection"
	case Request:
		return "request"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Outcome is how an attempt ended, as far as health is concerned.
type Outcome int

const (
	// Success is a good answer or an established connection. It resets the
	// run of consecutive errors.
	Success Outcome = iota
	// ConnectFailure: the target or the path refused or broke while
	// connecting. Counts as an error.
	ConnectFailure
	// GatewayError: HTTP 502, 503 or 504. Counts as an error, as Istio's
	// consecutiveGatewayErrors and consecutive5xxErrors both do.
	GatewayError
	// ServerError: any other 5xx. Counts as an error.
	ServerError
	// ClientError: a 4xx. The candidate answered properly, so like Envoy
	// this resets the run of errors rather than extending it.
	ClientError
	// Cancelled: the caller gave up (client went away, hedge lost). Says
	// nothing about health; its latency is only a lower bound.
	Cancelled
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case ConnectFailure:
		return "connect-failure"
	case GatewayError:
		return "gateway-error"
	case ServerError:
		return "server-error"
	case ClientError:
		return "client-error"
	case Cancelled:
		return "cancelled"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// isError reports whether o extends a run of consecutive errors.
func (o Outcome) isError() bool {
	return o == ConnectFailure || o == GatewayError || o == ServerError
}

// OutcomeForStatus classifies an HTTP status code the way outlier
// detection needs it. 1xx-3xx are Success.
func OutcomeForStatus(code int) Outcome {
	switch {
	case code == 502 || code == 503 || code == 504:
		return GatewayError
	case code >= 500 && code <= 599:
		return ServerError
	case code >= 400 && code <= 499:
		return ClientError
	}
	return Success
}
