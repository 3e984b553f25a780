package cloudevent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// decodeBinaryV1 decodes an event in binary mode of spec version 1.0, the
// form of a single event from most publishers (bench/README.md,
// "Persisted latency: a binary-mode decoder of weft's own"). It sets the
// attributes with the SDK's own setters, as its binding does, but without
// the binding's message, accessors and interface values, and encodes the
// event with encodeV1 rather than the SDK's encoder under json.Marshal,
// which compacts and checks all of it again. ok is false for anything
// else (another spec version, structured mode), which the SDK decodes.
func decodeBinaryV1(h http.Header, body []byte) (out []Decoded, ok bool, err error) {
	// As the SDK's binding: structured mode if the content type is an
	// event format, else binary mode if ce-specversion names a version.
	if format.Lookup(h.Get("Content-Type")) != nil || h.Get("Ce-Specversion") != event.CloudEventsVersionV1 {
		return nil, false, nil
	}
	e := event.New(event.CloudEventsVersionV1)
	ec := e.Context.(*event.EventContextV1)
	// The binding takes each header's first value; a name it does not
	// know, outside "Ce-", is not the event's. Keys are matched as they
	// are, canonical as net/http makes them, as the binding matches them.
	for k, v := range h {
		if len(v) == 0 {
			continue // the binding would index past it; net/http makes none
		}
		switch k {
		case "Ce-Specversion":
			// Checked above.
		case "Ce-Id":
			err = ec.SetID(v[0])
		case "Ce-Source":
			err = ec.SetSource(v[0])
		case "Ce-Type":
			err = ec.SetType(v[0])
		case "Content-Type":
			err = ec.SetDataContentType(v[0])
		case "Ce-Dataschema":
			err = ec.SetDataSchema(v[0])
		case "Ce-Subject":
			err = ec.SetSubject(v[0])
		case "Ce-Time":
			var t time.Time
			if t, err = types.ToTime(v[0]); err != nil {
				err = fmt.Errorf("invalid value for %s: %#v", spec.Time, v[0])
			} else {
				err = ec.SetTime(t)
			}
		default:
			if strings.HasPrefix(k, "Ce-") {
				err = ec.SetExtension(extensionName(k), v[0])
			}
		}
		if err != nil {
			return nil, true, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	if len(body) > 0 {
		e.DataEncoded = bytes.Clone(body)
	}
	out, err = check([]Event{e}, nil, true, encodeV1)
	return out, true, err
}

// extensionName is the attribute a "Ce-" header names, as the SDK's binding
// derives it: the first letter in lower case, the rest as net/http
// canonicalised it (SetExtension lowers it all). k is longer than "Ce-":
// DecodeBytes refuses a header named just that.
func extensionName(k string) string {
	var b strings.Builder
	b.Grow(len(k) - 3)
	b.WriteRune(unicode.ToLower(rune(k[3])))
	b.WriteString(k[4:])
	return b.String()
}

// encodeV1 writes a 1.0 event in structured JSON as json.Marshal does
// through the SDK's encoder (event.WriteJson): the same members in the same
// order, strings escaped as that encoder escapes them and then as
// json.Marshal's compaction escapes HTML. An event it cannot write so (an
// extension that is not a string, JSON data that is not valid) goes to
// Marshal, for the same answer or refusal as before.
func encodeV1(e *Event) ([]byte, error) {
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok {
		return Marshal(e)
	}
	names := make([]string, 0, len(ec.Extensions))
	for name, v := range ec.Extensions {
		if _, ok := v.(string); !ok {
			return Marshal(e)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	b := make([]byte, 0, 128+len(ec.ID)+len(ec.Type)+len(e.DataEncoded)*4/3)
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendString(b, ec.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, ec.Source.String())
	b = append(b, `,"type":`...)
	b = appendString(b, ec.Type)
	if ec.Subject != nil {
		b = append(b, `,"subject":`...)
		b = appendString(b, *ec.Subject)
	}
	if ec.DataContentType != nil {
		b = append(b, `,"datacontenttype":`...)
		b = appendString(b, *ec.DataContentType)
	}
	if ec.DataSchema != nil {
		b = append(b, `,"dataschema":`...)
		b = appendString(b, ec.DataSchema.String())
	}
	if ec.Time != nil {
		b = append(b, `,"time":`...)
		b = appendString(b, ec.Time.String())
	}
	if e.DataEncoded != nil {
		// The encoder writes data of a JSON type (or of none) as it is, and
		// json.Marshal compacts it.
		mt := "application/json"
		if ec.DataContentType != nil {
			mt = mediaType(*ec.DataContentType)
		}
		switch {
		case (mt == "" || jsonData(mt)) && !e.DataBase64:
			var data bytes.Buffer
			if json.Compact(&data, e.DataEncoded) != nil {
				return Marshal(e)
			}
			var esc bytes.Buffer
			json.HTMLEscape(&esc, data.Bytes())
			b = append(append(b, `,"data":`...), esc.Bytes()...)
		case e.DataBase64:
			b = append(b, `,"data_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, e.DataEncoded)
			b = append(b, '"')
		default:
			b = append(b, `,"data":`...)
			b = appendString(b, string(e.DataEncoded))
		}
	}
	for _, name := range names {
		b = append(b, ',')
		b = appendString(b, name)
		b = append(b, ':')
		b = appendString(b, ec.Extensions[name].(string))
	}
	return append(b, '}'), nil
}

// plain are the bytes appendString copies as they are, but for the bytes
// of non-ASCII characters, which it looks at for U+2028 and U+2029.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = !strings.ContainsRune(`"\\<>&`, rune(c))
	}
	return t
}()

// appendString appends s as a JSON string as json.Marshal writes one from
// the SDK's encoder: that encoder escapes '"', '\\' and control characters
// (\n, \r, \t, else \u00XX) and copies other bytes, even invalid UTF-8 (which
// check then refuses); json.Marshal escapes '<', '>', '&', U+2028 and
// U+2029.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc byte
		switch {
		case c >= utf8.RuneSelf:
			if c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xa8 {
				b = append(b, s[start:i]...)
				b = append(b, `\u202`...)
				b = append(b, hex[s[i+2]&0xf])
				i += 3
				start = i
				continue
			}
			i++
			continue
		case c == '"' || c == '\\':
			esc = c
		case c == '\n':
			esc = 'n'
		case c == '\r':
			esc = 'r'
		case c == '\t':
			esc = 't'
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			b = append(b, s[start:i]...)
			b = append(b, `\u00`...)
			b = append(b, hex[c>>4], hex[c&0xf])
			i++
			start = i
			continue
		default:
			for i++; i < len(s) && plain[s[i]]; i++ {
			}
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, '\\', esc)
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
