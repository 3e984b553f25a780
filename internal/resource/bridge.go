package resource

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KindBridge is the kind of a Bridge.
const KindBridge = "Bridge"

// BridgeSchemes are the broker URL schemes a Bridge may name; the scheme
// picks the kind of broker.
var BridgeSchemes = []string{"kafka", "amqp", "amqps", "mqtt", "mqtts", "nats"}

// Bridge connects a site's event mesh to one broker: messages of the
// broker's topics, queues or subjects come in as CloudEvents (In), and
// events of weft topics go out to the broker (Out).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Broker",type=string,JSONPath=`.spec.broker`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Bridge struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              BridgeSpec `json:"spec"`
	// +optional
	Status *BridgeStatus `json:"status,omitempty"`
}

// BridgeList is a list of Bridges.
// +kubebuilder:object:root=true
type BridgeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Bridge `json:"items"`
}

// BridgeSpec is the desired state of a Bridge.
type BridgeSpec struct {
	// Broker is the broker's URL: kafka://, amqp://, amqps://, mqtt://,
	// mqtts:// or nats://, with host and port.
	Broker string      `json:"broker"`
	Auth   BridgeAuth  `json:"auth,omitempty"`
	In     []BridgeIn  `json:"in,omitempty"`
	Out    []BridgeOut `json:"out,omitempty"`
}

// BridgeAuth says where the broker's credentials are: a YAML file at the
// site (username, password, and PEM file paths for TLS), never in the
// resource itself.
type BridgeAuth struct {
	SecretFile string `json:"secretFile,omitempty"`
}

// BridgeIn takes messages from a broker's From (an MQTT topic filter, a
// Kafka topic, an AMQP queue, a NATS subject) into a weft topic or queue:
// exactly one of Topic and Queue is set.
type BridgeIn struct {
	From  string `json:"from"`
	Topic string `json:"topic,omitempty"`
	Queue string `json:"queue,omitempty"`
}

// BridgeOut sends the events of a weft topic pattern, or of a weft queue
// pattern that the bridge consumes as one of the queue's consumers, to the
// broker's To (an MQTT topic, a Kafka topic, an AMQP exchange or queue, a
// NATS subject): exactly one of Topic and Queue is set.
type BridgeOut struct {
	Topic string `json:"topic,omitempty"`
	Queue string `json:"queue,omitempty"`
	To    string `json:"to"`
}

// BridgeStatus is a bridge's state as its site sees it.
type BridgeStatus struct {
	// State is connecting, connected or retrying.
	State string `json:"state"`
	// Error is why the last connection attempt or connection failed.
	Error string `json:"error,omitempty"`
	// Retries counts connection attempts that failed since the last
	// success.
	Retries int `json:"retries,omitempty"`
	// In and Out count messages taken in and events sent out since the
	// site started; Malformed the messages skipped as not convertible.
	In        uint64 `json:"in"`
	Out       uint64 `json:"out"`
	Malformed uint64 `json:"malformed,omitempty"`
}

// Bridge states.
const (
	BridgeConnecting = "connecting"
	BridgeConnected  = "connected"
	BridgeRetrying   = "retrying"
)

// BridgeScheme is the broker kind of a broker URL: its scheme, with the
// TLS variants folded (amqps is amqp, mqtts is mqtt).
func BridgeScheme(broker string) string {
	u, err := url.Parse(broker)
	if err != nil {
		return ""
	}
	switch u.Scheme {
	case "amqps", "mqtts":
		return strings.TrimSuffix(u.Scheme, "s")
	}
	return u.Scheme
}

// Default fills defaults and validates b.
func (b *Bridge) Default() error {
	b.APIVersion, b.Kind = APIVersion, KindBridge
	b.Status = nil
	if err := ValidateName(b.Name); err != nil {
		return err
	}
	u, err := url.Parse(b.Spec.Broker)
	if err != nil || !slices.Contains(BridgeSchemes, u.Scheme) || u.Host == "" {
		return invalid("spec.broker", "%q is not a broker URL such as mqtt://127.0.0.1:1883 (schemes: kafka, amqp, amqps, mqtt, mqtts, nats)", b.Spec.Broker)
	}
	if u.User != nil {
		return invalid("spec.broker", "the URL holds credentials: put them into the file of spec.auth.secretFile instead")
	}
	if len(b.Spec.In) == 0 && len(b.Spec.Out) == 0 {
		return invalid("spec", "set in, out or both: a bridge with neither does nothing")
	}
	for i, in := range b.Spec.In {
		if in.From == "" || len(in.From) > 1024 {
			return invalid(fieldIndex("spec.in", i, "from"), "set the broker's topic, queue or subject, at most 1024 bytes")
		}
		if (in.Topic == "") == (in.Queue == "") {
			return invalid(fieldIndex("spec.in", i, ""), "set exactly one of topic and queue")
		}
	}
	for i, out := range b.Spec.Out {
		if (out.Topic == "") == (out.Queue == "") {
			return invalid(fieldIndex("spec.out", i, ""), "set exactly one of topic and queue: the weft pattern whose events go out")
		}
		if out.To == "" || len(out.To) > 1024 {
			return invalid(fieldIndex("spec.out", i, "to"), "set the broker's destination, at most 1024 bytes")
		}
	}
	return nil
}

func fieldIndex(list string, i int, field string) string {
	f := list + "[" + strconv.Itoa(i) + "]"
	if field != "" {
		f += "." + field
	}
	return f
}
