package render

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// errSlowPath says that protoMap does not convert a value and NewObject must
// take the JSON round trip, which handles everything.
var errSlowPath = errors.New("render: value needs the JSON round trip")

// protoMap converts m to exactly what json.Unmarshal makes of the default
// jsonpb.Marshaler's output, which is what Istio's MarshalJSON gives, without
// writing or parsing JSON: that round trip was most of compiling a plan. It
// covers what renderers build (scalars, enums, lists, maps, nested messages,
// Duration, Timestamp, wrappers, Struct) and returns errSlowPath for the rest
// (Any, extensions, invalid UTF-8, out-of-range durations), whose answer the
// round trip then gives, errors included.
func protoMap(m protoreflect.Message) (map[string]any, error) {
	out := make(map[string]any, 4)
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsExtension() {
			err = errSlowPath
			return false
		}
		var x any
		if x, err = protoValue(fd, v); err != nil {
			return false
		}
		out[fd.JSONName()] = x
		return true
	})
	return out, err
}

// protoValue converts a field's value: a list, a map or a single value.
func protoValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (any, error) {
	switch {
	case fd.IsList():
		l := v.List()
		out := make([]any, l.Len())
		for i := range out {
			x, err := protoSingular(fd, l.Get(i))
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case fd.IsMap():
		out := make(map[string]any, v.Map().Len())
		var err error
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			ks := fmt.Sprint(k.Interface()) // as jsonpb names keys
			if !utf8.ValidString(ks) {
				err = errSlowPath
				return false
			}
			var x any
			if x, err = protoSingular(fd.MapValue(), mv); err != nil {
				return false
			}
			out[ks] = x
			return true
		})
		return out, err
	}
	return protoSingular(fd, v)
}

// protoSingular converts one value as jsonpb's marshalSingularValue writes it
// and json.Unmarshal reads it back: numbers become float64, 64-bit integers
// strings, enums their names.
func protoSingular(fd protoreflect.FieldDescriptor, v protoreflect.Value) (any, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return protoMessage(v.Message())
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return nil, nil
		}
		if vd := fd.Enum().Values().ByNumber(v.Enum()); vd != nil {
			return string(vd.Name()), nil
		}
		return float64(v.Enum()), nil
	case protoreflect.StringKind:
		if !utf8.ValidString(v.String()) {
			return nil, errSlowPath // json.Marshal replaces bad bytes one by one
		}
		return v.String(), nil
	case protoreflect.BytesKind:
		return base64.StdEncoding.EncodeToString(v.Bytes()), nil
	case protoreflect.BoolKind:
		return v.Bool(), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return float64(v.Int()), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return float64(v.Uint()), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10), nil
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		switch {
		case math.IsInf(f, 1):
			return "Infinity", nil
		case math.IsInf(f, -1):
			return "-Infinity", nil
		case math.IsNaN(f):
			return "NaN", nil
		}
		if fd.Kind() == protoreflect.FloatKind {
			// Written with float32's shortest digits, read back as float64.
			return strconv.ParseFloat(strconv.FormatFloat(f, 'g', -1, 32), 64)
		}
		return f, nil
	}
	return nil, errSlowPath
}

// protoMessage converts a nested message, well-known types in their JSON form.
func protoMessage(m protoreflect.Message) (any, error) {
	md := m.Descriptor()
	if md.FullName().Parent() != "google.protobuf" {
		return protoMap(m)
	}
	fds := md.Fields()
	switch md.Name() {
	case "BoolValue", "BytesValue", "StringValue", "Int32Value", "UInt32Value",
		"FloatValue", "Int64Value", "UInt64Value", "DoubleValue":
		fd := fds.ByNumber(1)
		return protoValue(fd, m.Get(fd))
	case "Duration":
		return duration(m.Get(fds.ByNumber(1)).Int(), m.Get(fds.ByNumber(2)).Int())
	case "Timestamp":
		s, ns := m.Get(fds.ByNumber(1)).Int(), m.Get(fds.ByNumber(2)).Int()
		if ns < 0 || ns >= int64(time.Second) {
			return nil, errSlowPath
		}
		return trimNanos(time.Unix(s, ns).UTC().Format("2006-01-02T15:04:05.000000000")) + "Z", nil
	case "Struct", "ListValue":
		fd := fds.ByNumber(1)
		return protoValue(fd, m.Get(fd))
	case "Value":
		fd := m.WhichOneof(md.Oneofs().Get(0))
		if fd == nil {
			return nil, errSlowPath // jsonpb's error
		}
		return protoValue(fd, m.Get(fd))
	case "Any":
		return nil, errSlowPath
	}
	return protoMap(m)
}

// duration formats as jsonpb does: seconds with 0, 3, 6 or 9 decimals.
func duration(s, ns int64) (any, error) {
	const maxSeconds = 315576000000
	if s < -maxSeconds || s > maxSeconds || ns <= -int64(time.Second) || ns >= int64(time.Second) ||
		(s > 0 && ns < 0) || (s < 0 && ns > 0) {
		return nil, errSlowPath // jsonpb's errors
	}
	sign := ""
	if s < 0 || ns < 0 {
		sign, s, ns = "-", -s, -ns
	}
	return sign + trimNanos(fmt.Sprintf("%d.%09d", s, ns)) + "s", nil
}

func trimNanos(x string) string {
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, "000")
	return strings.TrimSuffix(x, ".000")
}
