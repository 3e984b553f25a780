// Package canonjson writes canonical JSON: byte for byte what json.Marshal
// writes for a value's JSON form (object keys sorted, its float format, its
// escaping), without building that form first. The controller names every
// object it places by the hash of these bytes, so they must never change
// for the same input.
//
// Value writes what json.Unmarshal into an any gives (and int64); Proto
// writes a protobuf message as json.Marshal would write json.Unmarshal's
// reading of its jsonpb form, which is what the Istio types' MarshalJSON
// gives and what an API server stores.
package canonjson

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Writer appends canonical JSON to Buf. Its zero value is ready; reuse one to
// keep its scratch space, and do not copy one that has written a message
// (its scratch refers to it).
type Writer struct {
	Buf  []byte
	keys []string // of the maps being written, sorted

	// Proto's scratch: the populated fields of the messages being written,
	// outermost first, and what collects them.
	set     []setField
	ranks   []int // of the message whose fields collect is collecting
	collect func(protoreflect.FieldDescriptor, protoreflect.Value) bool
}

// Value writes v as json.Marshal would, or reports false, having written
// part of it, for a type it does not handle (anything but nil, string,
// bool, float64, int64, map[string]any and []any) or a float JSON has no
// form for.
func (w *Writer) Value(v any) bool {
	switch v := v.(type) {
	case nil:
		w.Buf = append(w.Buf, "null"...)
	case string:
		w.String(v)
	case bool:
		w.Buf = strconv.AppendBool(w.Buf, v)
	case float64:
		return w.Float(v)
	case int64:
		w.Buf = strconv.AppendInt(w.Buf, v, 10)
	case map[string]any:
		if v == nil {
			w.Buf = append(w.Buf, "null"...)
			break
		}
		start := len(w.keys)
		for k := range v {
			w.keys = append(w.keys, k)
		}
		keys := w.keys[start:]
		slices.Sort(keys)
		w.Buf = append(w.Buf, '{')
		for i, k := range keys {
			if i > 0 {
				w.Buf = append(w.Buf, ',')
			}
			w.String(k)
			w.Buf = append(w.Buf, ':')
			if !w.Value(v[k]) {
				return false
			}
		}
		w.Buf = append(w.Buf, '}')
		clear(keys)
		w.keys = w.keys[:start]
	case []any:
		if v == nil {
			w.Buf = append(w.Buf, "null"...)
			break
		}
		w.Buf = append(w.Buf, '[')
		for i, e := range v {
			if i > 0 {
				w.Buf = append(w.Buf, ',')
			}
			if !w.Value(e) {
				return false
			}
		}
		w.Buf = append(w.Buf, ']')
	default:
		return false
	}
	return true
}

// String writes plain ASCII as is and leaves anything json.Marshal escapes
// (controls, quotes, backslashes, <, >, &, non-ASCII) to it.
func (w *Writer) String(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			w.Buf = append(w.Buf, b...)
			return
		}
	}
	w.Buf = append(w.Buf, '"')
	w.Buf = append(w.Buf, s...)
	w.Buf = append(w.Buf, '"')
}

// Float is encoding/json's float64 encoder; it reports false for NaN and
// infinities, which json.Marshal refuses.
func (w *Writer) Float(f float64) bool {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	w.Buf = strconv.AppendFloat(w.Buf, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9, as encoding/json does.
		n := len(w.Buf)
		if n >= 4 && w.Buf[n-4] == 'e' && w.Buf[n-3] == '-' && w.Buf[n-2] == '0' {
			w.Buf[n-2] = w.Buf[n-1]
			w.Buf = w.Buf[:n-1]
		}
	}
	return true
}
