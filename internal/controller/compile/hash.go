package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"math"
	"slices"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Hash identifies a version of an object: the first 8 bytes of the SHA-256 of its
// JSON, in hex (encoding/json sorts map keys, so equal objects hash equally). It
// is the sync engine's hashObject, so that the hash in a status names the
// released body that was applied.
//
// The JSON is written straight into the hash, byte for byte what
// json.Marshal writes: marshalling every object of a plan dominated its
// allocations. Values canonical does not know take json.Marshal.
func Hash(u *unstructured.Unstructured) string {
	h := hashers.Get().(*hasher)
	defer hashers.Put(h)
	h.sha.Reset()
	h.buf, h.keys = h.buf[:0], h.keys[:0]
	if h.value(u.Object) {
		h.flush()
	} else {
		data, err := json.Marshal(u.Object)
		if err != nil {
			panic("compile: unstructured object does not marshal: " + err.Error()) // built from JSON
		}
		h.sha.Reset()
		h.sha.Write(data)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.sha.Sum(sum[:0])[:8])
}

// canonicalJSON is what Hash hashes, for tests; ok is false where Hash
// falls back to json.Marshal.
func canonicalJSON(v any) (data []byte, ok bool) {
	h := &hasher{}
	ok = h.value(v)
	h.flush()
	return h.out, ok
}

var hashers = sync.Pool{New: func() any { return &hasher{sha: sha256.New()} }}

// hasher writes JSON into sha in chunks of buf, or, without sha, into out.
type hasher struct {
	sha  hash.Hash
	buf  []byte
	keys []string // of the maps being written, sorted
	out  []byte
}

func (h *hasher) flush() {
	if h.sha != nil {
		h.sha.Write(h.buf)
	} else {
		h.out = append(h.out, h.buf...)
	}
	h.buf = h.buf[:0]
}

// value writes v as json.Marshal would, or reports false for a type it does
// not handle.
func (h *hasher) value(v any) bool {
	if len(h.buf) > 4096 {
		h.flush()
	}
	switch v := v.(type) {
	case nil:
		h.buf = append(h.buf, "null"...)
	case string:
		h.str(v)
	case bool:
		h.buf = strconv.AppendBool(h.buf, v)
	case float64:
		return h.float(v)
	case int64:
		h.buf = strconv.AppendInt(h.buf, v, 10)
	case map[string]any:
		if v == nil {
			h.buf = append(h.buf, "null"...)
			break
		}
		start := len(h.keys)
		for k := range v {
			h.keys = append(h.keys, k)
		}
		keys := h.keys[start:]
		slices.Sort(keys)
		h.buf = append(h.buf, '{')
		for i, k := range keys {
			if i > 0 {
				h.buf = append(h.buf, ',')
			}
			h.str(k)
			h.buf = append(h.buf, ':')
			if !h.value(v[k]) {
				return false
			}
		}
		h.buf = append(h.buf, '}')
		clear(keys)
		h.keys = h.keys[:start]
	case []any:
		if v == nil {
			h.buf = append(h.buf, "null"...)
			break
		}
		h.buf = append(h.buf, '[')
		for i, e := range v {
			if i > 0 {
				h.buf = append(h.buf, ',')
			}
			if !h.value(e) {
				return false
			}
		}
		h.buf = append(h.buf, ']')
	default:
		return false
	}
	return true
}

// str writes plain ASCII as is and leaves anything json.Marshal escapes
// (controls, quotes, backslashes, <, >, &, non-ASCII) to it.
func (h *hasher) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			h.buf = append(h.buf, b...)
			return
		}
	}
	h.buf = append(h.buf, '"')
	h.buf = append(h.buf, s...)
	h.buf = append(h.buf, '"')
}

// float is encoding/json's float64 encoder; json.Marshal fails on NaN and
// infinities, and so does Hash, through it.
func (h *hasher) float(f float64) bool {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	h.buf = strconv.AppendFloat(h.buf, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9, as encoding/json does.
		n := len(h.buf)
		if n >= 4 && h.buf[n-4] == 'e' && h.buf[n-3] == '-' && h.buf[n-2] == '0' {
			h.buf[n-2] = h.buf[n-1]
			h.buf = h.buf[:n-1]
		}
	}
	return true
}
