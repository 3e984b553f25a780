// Package cloudevent is the HTTP codec of weft's event API: it decodes
// CloudEvents from requests in binary mode, structured mode and batches, with
// size limits and a reason for every refusal, and encodes events for push
// delivery (binary mode) and for the wire between sites (structured JSON).
package cloudevent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
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

// ErrTooLarge is returned when the body is over the size limit; also a 400,
// with the limit in the reason.
var ErrTooLarge = errors.New("event over the size limit")

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
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSize+1))
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
	var evs []Event
	if strings.HasPrefix(ct, "application/cloudevents-batch+json") {
		if err := json.Unmarshal(body, &evs); err != nil {
			return nil, fmt.Errorf("%w: batch: %v", ErrMalformed, err)
		}
		if len(evs) == 0 {
			return nil, fmt.Errorf("%w: empty batch", ErrMalformed)
		}
		if len(evs) > MaxBatch {
			return nil, fmt.Errorf("%w: batch of %d events, limit %d", ErrMalformed, len(evs), MaxBatch)
		}
	} else {
		msg := cehttp.NewMessage(h, io.NopCloser(strings.NewReader(string(body))))
		if msg.ReadEncoding() == binding.EncodingUnknown {
			return nil, fmt.Errorf("%w: neither binary mode (ce-specversion, ce-id, ce-source, ce-type headers) nor structured mode (Content-Type: application/cloudevents+json)", ErrMalformed)
		}
		e, err := binding.ToEvent(context.Background(), msg)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		evs = []Event{*e}
	}
	out := make([]Decoded, len(evs))
	for i := range evs {
		where := ""
		if len(evs) > 1 {
			where = fmt.Sprintf("event %d: ", i)
		}
		// Binary mode without a Content-Type leaves the data's type unknown;
		// calling it opaque keeps it as bytes rather than failing as JSON.
		if len(evs[i].Data()) > 0 && evs[i].DataContentType() == "" {
			evs[i].SetDataContentType("application/octet-stream")
		}
		if err := evs[i].Validate(); err != nil {
			return nil, fmt.Errorf("%w: %s%v", ErrMalformed, where, err)
		}
		b, err := Marshal(&evs[i])
		if err != nil {
			return nil, fmt.Errorf("%w: %s%v", ErrMalformed, where, err)
		}
		out[i] = Decoded{Event: evs[i], JSON: b}
	}
	return out, nil
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

// NewRequest builds a binary-mode POST of e to url, as Knative's data plane
// delivers to a sink.
func NewRequest(ctx context.Context, url string, e Event) (*http.Request, error) {
	return cehttp.NewHTTPRequestFromEvent(ctx, url, e)
}
