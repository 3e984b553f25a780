package canonjson

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// ErrUnsupported says that Proto does not write a message and the caller
// must take the JSON round trip (MarshalJSON, json.Unmarshal, Value), which
// handles everything, errors included: Any, extensions, well-known types
// other than Duration, Timestamp, Empty, Struct and the wrappers, invalid
// UTF-8, out-of-range durations and timestamps, a Value with no kind.
var ErrUnsupported = errors.New("canonjson: message needs the JSON round trip")

// Proto writes m as json.Marshal writes what json.Unmarshal makes of the
// default jsonpb.Marshaler's output: fields by JSON name in sorted order,
// numbers through float64, 64-bit integers as strings, enums by name,
// well-known types in their JSON form. On an error it has written part of
// m: the caller truncates Buf.
func (w *Writer) Proto(m protoreflect.Message) error {
	md := m.Descriptor()
	if md.FullName().Parent() == "google.protobuf" {
		return w.wellKnown(m)
	}
	return w.fields(m)
}

// fieldRanks caches, for each message type, each field's place (by its
// index in the message's fields) in the order of their JSON names: the order
// json.Marshal writes a map's keys in.
var fieldRanks sync.Map // protoreflect.MessageDescriptor -> []int

func ranks(md protoreflect.MessageDescriptor) []int {
	if v, ok := fieldRanks.Load(md); ok {
		return v.([]int)
	}
	fds := md.Fields()
	order := make([]int, fds.Len())
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(fds.Get(a).JSONName(), fds.Get(b).JSONName()) })
	out := make([]int, len(order))
	for rank, i := range order {
		out[i] = rank
	}
	fieldRanks.Store(md, out)
	return out
}

// setField is a populated field of a message being written.
type setField struct {
	rank int
	fd   protoreflect.FieldDescriptor
	v    protoreflect.Value
}

// fields writes m's populated fields as an object. Range visits them
// (the fields Has reports, which jsonpb writes) without a look-up per
// declared field; they are then put in JSON-name order.
func (w *Writer) fields(m protoreflect.Message) error {
	md := m.Descriptor()
	if md.ExtensionRanges().Len() > 0 {
		return ErrUnsupported // extensions are not among md.Fields()
	}
	if w.collect == nil {
		// Once per Writer: a closure made per message would be allocated
		// per message, as Range's argument escapes.
		w.collect = func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			w.set = append(w.set, setField{w.ranks[fd.Index()], fd, v})
			return true
		}
	}
	base := len(w.set)
	w.ranks = ranks(md)
	m.Range(w.collect)
	// Nested messages append their fields after these and cut them off
	// again, so these stay where they are (by index: w.set may move).
	set := w.set[base:]
	for i := 1; i < len(set); i++ { // a message sets a few fields
		for j := i; j > 0 && set[j].rank < set[j-1].rank; j-- {
			set[j], set[j-1] = set[j-1], set[j]
		}
	}
	end := len(w.set)
	w.Buf = append(w.Buf, '{')
	for i := base; i < end; i++ {
		if i > base {
			w.Buf = append(w.Buf, ',')
		}
		f := w.set[i]
		w.String(f.fd.JSONName())
		w.Buf = append(w.Buf, ':')
		if err := w.field(f.fd, f.v); err != nil {
			w.dropFields(base, end)
			return err
		}
	}
	w.Buf = append(w.Buf, '}')
	w.dropFields(base, end)
	return nil
}

// dropFields cuts w.set back to base, clearing what it held up to end so
// that a pooled Writer keeps no message alive.
func (w *Writer) dropFields(base, end int) {
	clear(w.set[base:end])
	w.set = w.set[:base]
}

// field writes a field's value: a list, a map or a single value.
func (w *Writer) field(fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch {
	case fd.IsList():
		l := v.List()
		w.Buf = append(w.Buf, '[')
		for i := range l.Len() {
			if i > 0 {
				w.Buf = append(w.Buf, ',')
			}
			if err := w.singular(fd, l.Get(i)); err != nil {
				return err
			}
		}
		w.Buf = append(w.Buf, ']')
		return nil
	case fd.IsMap():
		type entry struct {
			key string
			v   protoreflect.Value
		}
		m := v.Map()
		entries := make([]entry, 0, m.Len())
		ok := true
		m.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			ks := k.String() // as jsonpb names keys
			if ok = utf8.ValidString(ks); ok {
				entries = append(entries, entry{ks, mv})
			}
			return ok
		})
		if !ok {
			return ErrUnsupported
		}
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
		w.Buf = append(w.Buf, '{')
		for i, e := range entries {
			if i > 0 {
				w.Buf = append(w.Buf, ',')
			}
			w.String(e.key)
			w.Buf = append(w.Buf, ':')
			if err := w.singular(fd.MapValue(), e.v); err != nil {
				return err
			}
		}
		w.Buf = append(w.Buf, '}')
		return nil
	}
	return w.singular(fd, v)
}

// singular writes one value as jsonpb's marshalSingularValue writes it and
// json.Unmarshal reads it back: numbers through float64, 64-bit integers as
// strings, enums by name.
func (w *Writer) singular(fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return w.Proto(v.Message())
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			w.Buf = append(w.Buf, "null"...)
		} else if vd := fd.Enum().Values().ByNumber(v.Enum()); vd != nil {
			w.String(string(vd.Name()))
		} else {
			w.Float(float64(v.Enum()))
		}
	case protoreflect.StringKind:
		if !utf8.ValidString(v.String()) {
			return ErrUnsupported // json.Marshal replaces bad bytes one by one
		}
		w.String(v.String())
	case protoreflect.BytesKind:
		w.Buf = append(w.Buf, '"')
		w.Buf = base64.StdEncoding.AppendEncode(w.Buf, v.Bytes()) // nothing in it to escape
		w.Buf = append(w.Buf, '"')
	case protoreflect.BoolKind:
		w.Buf = strconv.AppendBool(w.Buf, v.Bool())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		w.Float(float64(v.Int()))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		w.Float(float64(v.Uint()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		w.Buf = append(w.Buf, '"')
		w.Buf = strconv.AppendInt(w.Buf, v.Int(), 10)
		w.Buf = append(w.Buf, '"')
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		w.Buf = append(w.Buf, '"')
		w.Buf = strconv.AppendUint(w.Buf, v.Uint(), 10)
		w.Buf = append(w.Buf, '"')
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		switch {
		case math.IsInf(f, 1):
			w.Buf = append(w.Buf, `"Infinity"`...)
		case math.IsInf(f, -1):
			w.Buf = append(w.Buf, `"-Infinity"`...)
		case math.IsNaN(f):
			w.Buf = append(w.Buf, `"NaN"`...)
		case fd.Kind() == protoreflect.FloatKind:
			// Written with float32's shortest digits, read back as float64.
			f, _ = strconv.ParseFloat(strconv.FormatFloat(f, 'g', -1, 32), 64)
			w.Float(f)
		default:
			w.Float(f)
		}
	default:
		return ErrUnsupported
	}
	return nil
}

// wellKnown writes a google.protobuf message in its JSON form.
func (w *Writer) wellKnown(m protoreflect.Message) error {
	md := m.Descriptor()
	fds := md.Fields()
	switch md.Name() {
	case "BoolValue", "BytesValue", "StringValue", "Int32Value", "UInt32Value",
		"FloatValue", "Int64Value", "UInt64Value", "DoubleValue", "Struct", "ListValue":
		fd := fds.ByNumber(1)
		return w.field(fd, m.Get(fd))
	case "Value":
		fd := m.WhichOneof(md.Oneofs().Get(0))
		if fd == nil {
			return ErrUnsupported // jsonpb's error
		}
		return w.field(fd, m.Get(fd))
	case "Duration":
		return w.duration(m.Get(fds.ByNumber(1)).Int(), m.Get(fds.ByNumber(2)).Int())
	case "Timestamp":
		s, ns := m.Get(fds.ByNumber(1)).Int(), m.Get(fds.ByNumber(2)).Int()
		if ns < 0 || ns >= int64(time.Second) {
			return ErrUnsupported
		}
		w.Buf = append(w.Buf, '"')
		w.Buf = append(w.Buf, trimNanos(time.Unix(s, ns).UTC().Format("2006-01-02T15:04:05.000000000"))...)
		w.Buf = append(w.Buf, `Z"`...)
		return nil
	case "Empty":
		return w.fields(m)
	}
	return ErrUnsupported
}

// duration writes seconds as jsonpb does: with 0, 3, 6 or 9 decimals.
func (w *Writer) duration(s, ns int64) error {
	const maxSeconds = 315576000000
	if s < -maxSeconds || s > maxSeconds || ns <= -int64(time.Second) || ns >= int64(time.Second) ||
		(s > 0 && ns < 0) || (s < 0 && ns > 0) {
		return ErrUnsupported // jsonpb's errors
	}
	w.Buf = append(w.Buf, '"')
	if s < 0 || ns < 0 {
		w.Buf = append(w.Buf, '-')
		s, ns = -s, -ns
	}
	w.Buf = append(w.Buf, trimNanos(fmt.Sprintf("%d.%09d", s, ns))...)
	w.Buf = append(w.Buf, `s"`...)
	return nil
}

// trimNanos drops trailing groups of three zeros from a number with nine
// decimals, and the point if no decimal is left.
func trimNanos(x string) string {
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, "000")
	return strings.TrimSuffix(x, ".000")
}
