// Package cloudevent is the HTTP codec of weft's event API: it decodes
// CloudEvents from requests in binary mode, structured mode and batches, with
// size limits and a reason for every refusal, and encodes events for push
// delivery (binary mode) and for the wire between sites (structured JSON).
package cloudevent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/extensions"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// Event is a CloudEvent.
type Event = event.Event

// DefaultMaxSize is the default limit on a request body, and so on one event.
const DefaultMaxSize = 1 << 20

// MaxBatch bounds the events of one batch request.
const MaxBatch = 10000

// ErrMalformed is returned (wrapped, with the reason) for a request that does
// not carry valid CloudEvents. The HTTP answer is 400.
var ErrMalformed = errors.New("malformed CloudEvent")

// ErrTooLarge is returned when the body is over the size limit, with the
// limit in the reason. The HTTP answer is 413.
var ErrTooLarge = errors.New("event over the size limit")

// ErrUnsupportedFormat is returned for structured mode in a format other
// than JSON (application/cloudevents+xml, say). The HTTP answer is 415.
var ErrUnsupportedFormat = errors.New("unsupported CloudEvents format")

// Decoded is one accepted event with its structured JSON encoding, which is
// what is stored and sent between sites.
type Decoded struct {
	Event Event
	JSON  []byte
}

// Decode reads the CloudEvents of an HTTP request: one in binary mode
// (ce-* headers) or structured mode (application/cloudevents+json), or
// several as application/cloudevents-batch+json. The body is bounded by
// maxSize bytes. Each event is validated.
func Decode(r *http.Request, maxSize int64) ([]Decoded, error) {
	// Read in one go when the length is announced, rather than growing a
	// buffer through the body.
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(min(r.ContentLength, maxSize) + 1))
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, maxSize+1))
	body := buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: reading body: %v", ErrMalformed, err)
	}
	if int64(len(body)) > maxSize {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrTooLarge, maxSize)
	}
	return DecodeBytes(r.Header, body)
}

// DecodeBytes is Decode for a body already read; it is what the fuzz target
// drives.
func DecodeBytes(h http.Header, body []byte) ([]Decoded, error) {
	ct := strings.ToLower(h.Get("Content-Type"))
	if strings.HasPrefix(ct, "application/cloudevents-batch+json") {
		// A batch's events as the publisher encoded them: kept as the
		// events' JSON, they spare encoding each event again.
		raws, err := splitArray(body)
		if err != nil {
			return nil, fmt.Errorf("%w: batch: %v", ErrMalformed, err)
		}
		if len(raws) == 0 {
			return nil, fmt.Errorf("%w: empty batch", ErrMalformed)
		}
		if len(raws) > MaxBatch {
			return nil, fmt.Errorf("%w: batch of %d events, limit %d", ErrMalformed, len(raws), MaxBatch)
		}
		return DecodeEach(raws)
	}
	// The SDK indexes past the end of a header named just "ce-".
	for k := range h {
		if strings.EqualFold(k, "ce-") {
			return nil, fmt.Errorf("%w: a header named %q names no attribute; extension headers are ce- and the attribute's name", ErrMalformed, k)
		}
	}
	if out, ok, err := decodeBinaryV1(h, body); ok {
		return out, err
	}
	return decodeSDK(h, body, ct)
}

// decodeSDK decodes an event in binary or structured mode through the
// SDK's binding; decodeBinaryV1 takes binary mode 1.0 off it, and its tests
// hold the two to the same answers.
func decodeSDK(h http.Header, body []byte, ct string) ([]Decoded, error) {
	msg := cehttp.NewMessage(h, io.NopCloser(strings.NewReader(string(body))))
	enc := msg.ReadEncoding()
	if enc == binding.EncodingUnknown && strings.HasPrefix(ct, "application/cloudevents+") {
		return nil, fmt.Errorf("%w: structured mode as %q; send application/cloudevents+json", ErrUnsupportedFormat, mediaType(ct))
	}
	if enc == binding.EncodingUnknown {
		return nil, fmt.Errorf("%w: neither binary mode (ce-specversion, ce-id, ce-source, ce-type headers) nor structured mode (Content-Type: application/cloudevents+json)", ErrMalformed)
	}
	e, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return check([]Event{*e}, nil, enc == binding.EncodingBinary, Marshal)
}

// DecodeEach decodes events each in structured-mode JSON, as a publish
// stream carries them (at most MaxBatch), and validates them as
// DecodeBytes does a batch.
func DecodeEach(raws [][]byte) ([]Decoded, error) {
	if len(raws) == 0 || len(raws) > MaxBatch {
		return nil, fmt.Errorf("%w: batch of %d events; send 1 to %d", ErrMalformed, len(raws), MaxBatch)
	}
	evs := make([]Event, len(raws))
	for i, r := range raws {
		if err := evs[i].UnmarshalJSON(r); err != nil {
			return nil, fmt.Errorf("%w: event %d: %v", ErrMalformed, i, err)
		}
	}
	return check(evs, raws, false, Marshal)
}

// check validates decoded events and finds each one's JSON: raws[i], the
// publisher's own encoding, when there is one and it needed no change, else
// what encode writes.
func check(evs []Event, raws [][]byte, binaryMode bool, encode func(*Event) ([]byte, error)) ([]Decoded, error) {
	out := make([]Decoded, len(evs))
	for i := range evs {
		// Which event of a batch a refusal is about; formatted only then.
		where := func() string {
			if len(evs) > 1 {
				return fmt.Sprintf("event %d: ", i)
			}
			return ""
		}
		// Binary mode without a Content-Type leaves the data's type unknown;
		// calling it opaque keeps it as bytes rather than failing as JSON.
		// In the JSON format no datacontenttype means JSON data, which
		// must stay JSON, not turn into a string.
		changed := false
		if binaryMode && len(evs[i].Data()) > 0 && evs[i].DataContentType() == "" {
			evs[i].SetDataContentType("application/octet-stream")
			changed = true
		}
		// Media types are case-insensitive, but the SDK's decoder takes
		// "Application/json" for a type other than JSON while its encoder
		// writes such data as JSON: the event would not decode again at the
		// next site, and a log stream would stop at it for good. Write the
		// media type as the decoder expects it.
		if mt, params, hasParams := strings.Cut(evs[i].DataContentType(), ";"); mt != mediaType(mt) {
			mt = mediaType(mt)
			if hasParams {
				mt += ";" + params
			}
			evs[i].SetDataContentType(mt)
			changed = true
		}
		// Data that is not text travels as base64, or the JSON would not
		// be valid UTF-8.
		if !evs[i].DataBase64 && !utf8.Valid(evs[i].Data()) {
			evs[i].DataBase64 = true
			changed = true
		}
		// The encoding writes JSON data as it is: check it here, where the
		// publisher can be told, rather than fail to encode it.
		if dct := mediaType(evs[i].DataContentType()); !evs[i].DataBase64 && jsonData(dct) && !json.Valid(evs[i].Data()) {
			return nil, fmt.Errorf("%w: %sthe data is not valid JSON, which its content type %q says it is; send valid JSON, or say what it is in another content type", ErrMalformed, where(), dct)
		}
		if _, ok := evs[i].Extensions()[SeqExtension]; ok {
			return nil, fmt.Errorf("%w: %sthe extension attribute %s is reserved for the site", ErrMalformed, where(), SeqExtension)
		}
		err := evs[i].Validate()
		if err != nil {
			return nil, fmt.Errorf("%w: %s%v", ErrMalformed, where(), err)
		}
		var b []byte
		if raws != nil && !changed {
			b = oneLine(raws[i])
		}
		if b == nil || CheckStreamable(b) != nil {
			b, err = encode(&evs[i])
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s%v", ErrMalformed, where(), err)
		}
		// Attributes are Unicode strings: one that is not valid UTF-8 would
		// reach this site's subscribers as it is, and be dropped by every
		// other site as malformed.
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("%w: %san attribute is not valid UTF-8", ErrMalformed, where())
		}
		out[i] = Decoded{Event: evs[i], JSON: b}
	}
	return out, nil
}

// mediaType is a content type without its parameters, in lower case.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// jsonData reports whether the CloudEvents encoding writes data of this
// media type into the event's JSON as it is, which the SDK does for these.
func jsonData(mt string) bool {
	switch mt {
	case "application/json", "text/json", "application/cloudevents+json", "application/cloudevents-batch+json":
		return true
	}
	return false
}

// splitArray returns the elements of the JSON array b. It checks b with
// json.Valid, then finds the elements by following only strings and
// nesting: a full decode into json.RawMessage scans everything twice.
func splitArray(b []byte) ([][]byte, error) {
	if !json.Valid(b) {
		// Unmarshal tells where and why.
		var v any
		err := json.Unmarshal(b, &v)
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if b[0] != '[' {
		return nil, errors.New("not an array")
	}
	var out [][]byte
	depth, start := 0, -1
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			if depth == 0 && start < 0 {
				start = i
			}
			// Valid JSON: the string ends at the first quote not escaped.
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case c == '{' || c == '[':
			if depth == 0 && start < 0 {
				start = i
			}
			depth++
		case (c == '}' || c == ']') && depth > 0:
			depth--
		case c == ']' || c == ',' && depth == 0:
			if start >= 0 {
				out = append(out, bytes.TrimSpace(b[start:i]))
			}
			start = -1
		case depth == 0 && start < 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n':
			start = i
		}
	}
	return out, nil
}

// oneLine returns valid JSON without line breaks, as a stream writes an
// event: a line break can only be whitespace between tokens, since strings
// escape it.
func oneLine(js []byte) []byte {
	if bytes.IndexByte(js, '\n') < 0 && bytes.IndexByte(js, '\r') < 0 {
		return js
	}
	var b bytes.Buffer
	json.Compact(&b, js)
	return b.Bytes()
}

// CheckStreamable is what a site checks of an event that the publishing
// site decoded, validated and encoded, before it streams it: that it is
// one line of valid UTF-8 holding a JSON object, as an SSE data line and a
// WebSocket text message must be. Decoding the event again would cost more
// than the rest of its way through the site.
func CheckStreamable(b []byte) error {
	switch {
	case len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}':
		return fmt.Errorf("%w: not a JSON object", ErrMalformed)
	case bytes.IndexByte(b, '\n') >= 0 || bytes.IndexByte(b, '\r') >= 0:
		return fmt.Errorf("%w: line break", ErrMalformed)
	case !utf8.Valid(b):
		return fmt.Errorf("%w: invalid UTF-8", ErrMalformed)
	}
	return nil
}

// Marshal encodes e in structured JSON, the form events take between sites
// and in the log.
func Marshal(e *Event) ([]byte, error) { return json.Marshal(e) }

// Unmarshal decodes and validates what Marshal produced; the bytes may come
// from another site.
func Unmarshal(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return e, nil
}

// Key returns the source and id attributes of an event that a site
// decoded, validated and encoded (structured JSON), after the checks of
// CheckStreamable: all a site that stores and forwards the event needs of
// it. Decoding the whole event again, as Unmarshal does, cost a transit
// site more than storing it.
func Key(b []byte) (source, id string, err error) {
	if err := CheckStreamable(b); err != nil {
		return "", "", err
	}
	// Only the object's own attributes count, not those of an object in
	// its data: follow strings and nesting, as splitArray does.
	depth, key := 0, true
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			end := stringEnd(b, i)
			if end < 0 {
				return "", "", fmt.Errorf("%w: unterminated string", ErrMalformed)
			}
			if depth == 1 && key {
				name := string(b[i+1 : end])
				colon := bytes.IndexByte(b[end+1:], ':')
				if colon < 0 {
					return "", "", fmt.Errorf("%w: attribute %q without a value", ErrMalformed, name)
				}
				v := end + 1 + colon + 1
				for v < len(b) && (b[v] == ' ' || b[v] == '\t') {
					v++
				}
				if (name == "id" || name == "source") && v < len(b) && b[v] == '"' {
					vend := stringEnd(b, v)
					if vend < 0 {
						return "", "", fmt.Errorf("%w: unterminated string", ErrMalformed)
					}
					s := string(b[v+1 : vend])
					if bytes.IndexByte(b[v:vend], '\\') >= 0 && json.Unmarshal(b[v:vend+1], &s) != nil {
						return "", "", fmt.Errorf("%w: attribute %s is not a string", ErrMalformed, name)
					}
					if name == "id" {
						id = s
					} else {
						source = s
					}
				}
				key = false
			}
			i = end
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ',' && depth == 1:
			key = true
		}
	}
	if source == "" || id == "" {
		return "", "", fmt.Errorf("%w: no source and id strings", ErrMalformed)
	}
	return source, id, nil
}

// stringEnd is the index of the quote that ends the JSON string starting at
// b[start], or -1.
func stringEnd(b []byte, start int) int {
	for i := start + 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// SeqExtension is the extension attribute that marks an event a site
// streams from its inbox with the event's seq there, which a client passes
// back as Last-Event-ID to resume. Publishers may not set it.
const SeqExtension = "weftseq"

// AppendSeq appends to b the structured JSON event with SeqExtension set to
// seq. It splices the attribute in before the object's closing brace rather
// than decoding and encoding the event again.
func AppendSeq(b, event []byte, seq uint64) []byte {
	return splice(b, event, func(b []byte) []byte {
		b = append(b, `"`+SeqExtension+`":"`...)
		b = strconv.AppendUint(b, seq, 10)
		return append(b, '"')
	})
}

// Attributes of the CloudEvents distributed-tracing extension.
const (
	TraceparentAttr = extensions.TraceParentExtension
	TracestateAttr  = extensions.TraceStateExtension
)

// AppendAttrs appends to b the structured JSON event with string
// attributes added (name, value, name, value, ...), spliced in as
// AppendSeq does. The caller must not name an attribute the event has.
func AppendAttrs(b, event []byte, kv ...string) []byte {
	return splice(b, event, func(b []byte) []byte {
		for i := 0; i+1 < len(kv); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, kv[i])
			b = append(b, ':')
			v, _ := json.Marshal(kv[i+1]) // a string always marshals
			b = append(b, v...)
		}
		return b
	})
}

// splice appends event to b with what attr appends inserted as the last
// members of its object.
func splice(b, event []byte, attr func([]byte) []byte) []byte {
	end := bytes.LastIndexByte(event, '}')
	if end < 0 {
		return append(b, event...)
	}
	head := bytes.TrimRight(event[:end], " \t\r\n")
	b = append(b, event[:end]...)
	if len(head) > 0 && head[len(head)-1] != '{' {
		b = append(b, ',')
	}
	b = attr(b)
	return append(b, event[end:]...)
}

// NewRequest builds a binary-mode POST of e to url, as Knative's data plane
// delivers to a sink.
func NewRequest(ctx context.Context, url string, e Event) (*http.Request, error) {
	return cehttp.NewHTTPRequestFromEvent(ctx, url, e)
}
