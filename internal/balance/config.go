package balance

import "time"

// Defaults. The outlier values are Istio's (and Envoy's) so that a weft
// connector behaves like a DestinationRule that sets nothing.
const (
	DefaultConsecutiveErrors  = 5
	DefaultInterval           = 10 * time.Second
	DefaultBaseEjection       = 30 * time.Second
	DefaultMaxEjectionPercent = 10
	// DefaultMaxEjection is Envoy's max_ejection_time; Istio exposes no
	// knob for it. Without a cap a flapping site that was ejected ten
	// times would stay out for five minutes and more after it recovered.
	DefaultMaxEjection = 300 * time.Second
	// DefaultEWMAHalfLife is shorter than Linkerd's and Finagle's decay
	// (τ = 10s, a half-life of about 6.9s). Across clouds a latency change
	// usually means a path change that lasts, so reacting sooner pays; the
	// peak rule already makes rises immediate, and the half-life bounds
	// how long one spike hurts and how soon a site seen as slow is probed
	// again (after about log2(slowdown) half-lives when idle: ~17s for a
	// tenfold slowdown).
	DefaultEWMAHalfLife = 5 * time.Second
)

// Outlier configures ejection of failing candidates (Istio's
// outlierDetection, consecutive-errors flavour). A zero field takes its
// default; see the Default constants.
type Outlier struct {
	// ConsecutiveErrors is how many ConnectFailure, GatewayError or
	// ServerError outcomes in a row eject a candidate. Negative disables
	// ejection altogether.
	ConsecutiveErrors int
	// Interval is how long a candidate must stay healthy (not ejected) for
	// its times-ejected count to drop by one. Envoy also sweeps for
	// returns on this tick; weft returns candidates exactly on time.
	Interval time.Duration
	// BaseEjection is the ejection time of a first ejection; the n-th
	// ejection in a row lasts n × BaseEjection.
	BaseEjection time.Duration
	// MaxEjection caps one ejection's duration (Envoy's max_ejection_time).
	// A value below BaseEjection is raised to BaseEjection.
	MaxEjection time.Duration
	// MaxEjectionPercent caps the share of known candidates ejected at
	// once; at least one may always be ejected (Envoy). Values above 100
	// mean 100. Negative allows no ejection.
	MaxEjectionPercent int
}

// Config configures a Picker. The zero Config is the default one.
type Config struct {
	Outlier Outlier
	// EWMAHalfLife is the half-life of the latency estimate, both for
	// blending samples and for decaying an idle candidate's estimate.
	EWMAHalfLife time.Duration
}

// DefaultConfig returns the configuration a zero Config stands for, with
// every default filled in, for flag help and status output.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	o := &c.Outlier
	if o.ConsecutiveErrors == 0 {
		o.ConsecutiveErrors = DefaultConsecutiveErrors
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.BaseEjection <= 0 {
		o.BaseEjection = DefaultBaseEjection
	}
	if o.MaxEjection <= 0 {
		o.MaxEjection = DefaultMaxEjection
	}
	if o.MaxEjection < o.BaseEjection {
		o.MaxEjection = o.BaseEjection
	}
	switch {
	case o.MaxEjectionPercent == 0:
		o.MaxEjectionPercent = DefaultMaxEjectionPercent
	case o.MaxEjectionPercent > 100:
		o.MaxEjectionPercent = 100
	}
	if c.EWMAHalfLife <= 0 {
		c.EWMAHalfLife = DefaultEWMAHalfLife
	}
	return c
}
