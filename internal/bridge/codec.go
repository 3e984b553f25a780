package bridge

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/google/uuid"

	"weft.dev/weft/internal/events/cloudevent"
)

// Binding is how a protocol carries a CloudEvent's attributes in binary
// mode, after its official CloudEvents binding: one message header (Kafka
// record header, AMQP application property, MQTT 5 user property, NATS
// header) per attribute, named Prefix and the attribute's name, with
// datacontenttype as the message's content type.
type Binding struct {
	Prefix string // "ce_" (Kafka), "cloudEvents:" (AMQP), "" (MQTT 5), "ce-" (NATS)
}

// Header is one message header as the broker has it.
type Header struct{ Name, Value string }

// Message is one message from a broker, as a module hands it over.
type Message struct {
	// Subject is the broker's topic, queue or subject it came from.
	Subject     string
	Headers     []Header
	ContentType string
	// Key identifies the message at the broker where the protocol has
	// such a thing (a Kafka record's topic, partition and offset, an AMQP
	// message-id, a NATS Nats-Msg-Id): a plain message's CloudEvents id.
	Key  string
	Body []byte
	// Ack tells the broker the message is handled; nil when the protocol
	// has no acknowledgement (NATS core).
	Ack func() error
}

// Plain is what a plain message (neither binary nor structured mode)
// becomes: a CloudEvent with this source and type, the message's Key as
// its id (a random UUID when it has none) and its body as data, of the
// message's content type or application/octet-stream.
type Plain struct{ Source, Type string }

// ErrMalformed is returned (wrapped, with the reason) for a message that
// cannot be made a CloudEvent.
var ErrMalformed = errors.New("malformed message")

// maxAttrName is the longest attribute name the CloudEvents spec allows
// a producer (20 characters, lower-case letters and digits).
const maxAttrName = 20

func attrName(s string) bool {
	if s == "" || len(s) > maxAttrName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Decode makes a broker's message CloudEvents: one in binary mode (the
// binding's headers carry specversion), in structured mode (content type
// application/cloudevents+json, or a batch), or a plain message (plain
// says how). Headers that are not attributes are ignored. The events are
// validated and encoded as the event API's are (cloudevent.DecodeBytes).
func Decode(m *Message, b Binding, plain Plain) ([]cloudevent.Decoded, error) {
	if len(m.Body) > cloudevent.DefaultMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, over the %d an event may have", ErrMalformed, len(m.Body), cloudevent.DefaultMaxSize)
	}
	h := http.Header{}
	ct := m.ContentType
	for _, kv := range m.Headers {
		if len(kv.Name) < len(b.Prefix) || !strings.EqualFold(kv.Name[:len(b.Prefix)], b.Prefix) {
			continue
		}
		name := strings.ToLower(kv.Name[len(b.Prefix):])
		if !attrName(name) {
			continue
		}
		if name == "datacontenttype" {
			if ct == "" {
				ct = kv.Value
			}
			continue
		}
		h.Set("Ce-"+name, kv.Value)
	}
	if h.Get("Ce-Specversion") == "" && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/cloudevents") {
		id := m.Key
		if id == "" {
			id = uuid.NewString()
		}
		h = http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {id}, "Ce-Source": {plain.Source}, "Ce-Type": {plain.Type}}
		if ct == "" && len(m.Body) > 0 {
			ct = "application/octet-stream"
		}
	}
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	evs, err := cloudevent.DecodeBytes(h, m.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return evs, nil
}

// Encode lays e out in binary mode: the binding's headers for its
// attributes and extensions, its data content type, its data.
func Encode(e *cloudevent.Event, b Binding) (headers []Header, contentType string, body []byte, err error) {
	v := spec.VS.Version(e.SpecVersion())
	if v == nil {
		return nil, "", nil, fmt.Errorf("%w: specversion %q", ErrMalformed, e.SpecVersion())
	}
	for _, a := range v.Attributes() {
		val := a.Get(e.Context)
		if val == nil || a.Kind() == spec.DataContentType {
			continue
		}
		s, err := types.Format(val)
		if err != nil {
			return nil, "", nil, fmt.Errorf("%w: attribute %s: %v", ErrMalformed, a.Name(), err)
		}
		headers = append(headers, Header{b.Prefix + a.Name(), s})
	}
	exts := e.Extensions()
	for _, name := range slices.Sorted(maps.Keys(exts)) {
		s, err := types.Format(exts[name])
		if err != nil {
			return nil, "", nil, fmt.Errorf("%w: extension %s: %v", ErrMalformed, name, err)
		}
		headers = append(headers, Header{b.Prefix + name, s})
	}
	return headers, e.DataContentType(), e.Data(), nil
}
