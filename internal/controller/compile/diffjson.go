package compile

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// maxDiffDepth bounds how deep diffJSON follows nested containers (and so its
// recursion); deeper bodies take the decoding diff, which json.Unmarshal
// bounds itself.
const maxDiffDepth = 1000

// diffJSON is Diff of the maps the JSON objects old and new decode to (with
// json.Unmarshal, as Object.Body does), walking their bytes instead: a value
// whose bytes are equal on both sides decodes equally and is skipped, and
// only values that differ and are not both objects or both arrays are
// decoded, to be compared as Diff does. Decoding both whole bodies into maps
// was most of planning an object that changed, and of its garbage.
//
// ok is false where this walk would not be sure to find what Diff finds: a
// body that is not a JSON object json.Unmarshal decodes without error (so
// that Plan diffs it as absent), or nests deeper than maxDiffDepth. The
// caller then decodes both bodies, as before. An object whose keys are not in
// strictly increasing order (not json.Marshal's output; repeated keys, which
// json.Unmarshal resolves to the last) is decoded where it is met.
func diffJSON(old, new []byte) (out []FieldChange, ok bool) {
	a, b := bytes.Trim(old, jsonSpace), bytes.Trim(new, jsonSpace)
	if len(a) == 0 || len(b) == 0 || a[0] != '{' || b[0] != '{' {
		return nil, false
	}
	// The walk validates what it passes over, and compares a value's
	// bytes only once it has found where the value ends; equal bodies are
	// compared before anything is.
	if bytes.Equal(a, b) {
		return nil, valueEnd(a, 0, 0) == len(a)
	}
	d := differ{path: make([]byte, 0, 64)}
	if !d.objects(a, b, 0) {
		return nil, false
	}
	if len(d.out) == 0 {
		return nil, true
	}
	return d.out, true
}

const jsonSpace = " \t\r\n"

// differ walks two bodies: path is where the walk is, as diff spells paths,
// built in place and made a string only for a change (most members a walk
// enters hold one change, deeper down).
type differ struct {
	path []byte
	out  []FieldChange
}

// raw appends the changes between the valid JSON values a and b (no
// surrounding space) at d.path, as diff would between their decodings.
func (d *differ) raw(a, b []byte, depth int) bool {
	switch {
	case bytes.Equal(a, b):
		return true
	case a[0] == '{' && b[0] == '{':
		return d.objects(a, b, depth)
	case a[0] == '[' && b[0] == '[':
		return d.arrays(a, b, depth)
	}
	return d.decoded(a, b)
}

// objects merges the members of two objects by key, in the order diff
// visits them. It is false if a or b is not exactly one valid object.
func (d *differ) objects(a, b []byte, depth int) bool {
	mark, at := len(d.out), len(d.path)
	ai, bi := newElements(a, depth, true), newElements(b, depth, true)
	ak, av, aok := ai.next(nil, nil)
	bk, bv, bok := bi.next(ak, av)
	sorted := true
	for sorted && (aok || bok) {
		var c int
		switch {
		case !bok:
			c = -1
		case !aok:
			c = 1
		default:
			c = bytes.Compare(ak, bk)
		}
		var ok bool
		switch {
		case c < 0:
			d.member(at, ak)
			ok = d.decoded(av, nil)
		case c > 0:
			d.member(at, bk)
			ok = d.decoded(nil, bv)
		case bytes.Equal(av, bv):
			ok = true
		default:
			d.member(at, ak)
			ok = d.raw(av, bv, depth+1)
		}
		d.path = d.path[:at]
		if !ok {
			return false
		}
		if c <= 0 {
			prev := ak
			ak, av, aok = ai.next(nil, nil)
			sorted = !aok || bytes.Compare(prev, ak) < 0
		}
		if c >= 0 && sorted {
			prev := bk
			bk, bv, bok = bi.next(ak, av)
			sorted = !bok || bytes.Compare(prev, bk) < 0
		}
	}
	if !sorted {
		// Keys out of order or repeated: a map decides which is which.
		d.out = d.out[:mark]
		return d.decoded(a, b)
	}
	return ai.whole() && bi.whole()
}

// arrays compares two arrays element by element, as diff does.
func (d *differ) arrays(a, b []byte, depth int) bool {
	at := len(d.path)
	ai, bi := newElements(a, depth, true), newElements(b, depth, true)
	for i := 0; ; i++ {
		_, av, aok := ai.next(nil, nil)
		_, bv, bok := bi.next(nil, av)
		if !aok && !bok {
			return ai.whole() && bi.whole()
		}
		if aok && bok && bytes.Equal(av, bv) {
			continue
		}
		d.path = append(strconv.AppendInt(append(d.path, '['), int64(i), 10), ']')
		var ok bool
		if aok && bok {
			ok = d.raw(av, bv, depth+1)
		} else {
			ok = d.decoded(av, bv)
		}
		d.path = d.path[:at]
		if !ok {
			return false
		}
	}
}

// member makes d.path, cut back to at, the path of the member key.
func (d *differ) member(at int, key []byte) {
	if d.path = d.path[:at]; at > 0 {
		d.path = append(d.path, '.')
	}
	d.path = append(d.path, key...)
}

// decoded is diff at d.path of the decodings of a and b, nil for an absent
// value.
func (d *differ) decoded(a, b []byte) bool {
	av, ok := decodeValue(a)
	if !ok {
		return false
	}
	bv, ok := decodeValue(b)
	if !ok {
		return false
	}
	diff(string(d.path), av, bv, &d.out)
	return true
}

// decodeValue is what json.Unmarshal decodes the value v into an
// interface{} as, nil for nil. The scalars a walk has validated are decoded
// as it would, without its decoder (and its allocations): a plain string's
// bytes are what it decodes to, a number is its float64, and the literals
// are what they say.
func decodeValue(v []byte) (any, bool) {
	if v == nil {
		return nil, true
	}
	switch v[0] {
	case '"':
		if end, plain := stringEnd(v, 0); plain && end == len(v) {
			return string(v[1 : end-1]), true
		}
	case 't', 'f', 'n':
		switch string(v) {
		case "true":
			return true, true
		case "false":
			return false, true
		case "null":
			return nil, true
		}
	case '{', '[':
	default:
		if numberEnd(v, 0) == len(v) {
			if f, err := strconv.ParseFloat(string(v), 64); err == nil {
				return f, true
			}
		}
	}
	var x any
	if json.Unmarshal(v, &x) != nil {
		return nil, false
	}
	return x, true
}

// elements iterates over the members of a JSON object or the elements of
// an array, b, validating them.
type elements struct {
	b         []byte
	i         int // the opening bracket or the last comma
	depth     int
	close     byte
	started   bool
	done, bad bool
	end       int  // past the closing bracket, once done
	keys      bool // decode keys that are not plain; else next returns nil for them
}

func newElements(b []byte, depth int, keys bool) elements {
	e := elements{b: b, depth: depth, close: ']', keys: keys}
	if b[0] == '{' {
		e.close = '}'
	}
	return e
}

// next returns the next member's decoded key (nil for an array) and its
// value, without surrounding space; ok is false at the end, or where b is
// not valid (bad).
//
// likeKey and likeValue are the member the other side's walk holds (a
// value valid at this depth, or nil): if the next member has that key and
// its value begins with likeValue's bytes, an object, array or string,
// which end where their bytes say, those bytes are its value, valid
// without scanning them again. Most members of a changed body are
// unchanged.
func (e *elements) next(likeKey, likeValue []byte) (key, value []byte, ok bool) {
	if e.done || e.bad {
		return nil, nil, false
	}
	b := e.b
	i := skipSpace(b, e.i+1)
	if !e.started {
		e.started = true
		if i < len(b) && b[i] == e.close {
			e.done, e.end = true, i+1
			return nil, nil, false
		}
	}
	if e.close == '}' {
		end, plain := -1, false
		if i < len(b) && b[i] == '"' {
			end, plain = stringEnd(b, i)
		}
		if end < 0 {
			e.bad = true
			return nil, nil, false
		}
		switch {
		case plain:
			key = b[i+1 : end-1]
		case e.keys:
			key = decodedKey(b[i:end])
		}
		if i = skipSpace(b, end); i >= len(b) || b[i] != ':' {
			e.bad = true
			return nil, nil, false
		}
		i = skipSpace(b, i+1)
	}
	var end int
	if len(likeValue) > 0 && (likeValue[0] == '{' || likeValue[0] == '[' || likeValue[0] == '"') &&
		bytes.Equal(key, likeKey) && bytes.HasPrefix(b[i:], likeValue) {
		end = i + len(likeValue)
	} else {
		end = valueEnd(b, i, e.depth+1)
	}
	if end < 0 {
		e.bad = true
		return nil, nil, false
	}
	value, e.i = b[i:end], skipSpace(b, end)
	switch {
	case e.i >= len(b) || b[e.i] != ',' && b[e.i] != e.close:
		e.bad = true
		return nil, nil, false
	case b[e.i] == e.close:
		e.done, e.end = true, e.i+1
	}
	return key, value, true
}

// whole reports whether the elements were valid and ended with b.
func (e *elements) whole() bool { return e.done && !e.bad && e.end == len(e.b) }

// decodedKey is the string the quoted key q decodes to: q's bytes, unless
// it has escapes or bytes json.Unmarshal replaces (invalid UTF-8).
func decodedKey(q []byte) []byte {
	if s := q[1 : len(q)-1]; bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return s
	}
	var k string
	if err := json.Unmarshal(q, &k); err != nil {
		panic("compile: a validated key does not decode: " + err.Error())
	}
	return []byte(k)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// valueEnd returns where the JSON value starting at b[i] ends, or -1 if it
// is not one json.Unmarshal decodes into an interface{} without error, or
// nests deeper than maxDiffDepth.
func valueEnd(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '{', '[':
		return containerEnd(b, i, depth)
	case '"':
		end, _ := stringEnd(b, i)
		return end
	case 't':
		return literalEnd(b, i, "true")
	case 'f':
		return literalEnd(b, i, "false")
	case 'n':
		return literalEnd(b, i, "null")
	}
	return numberEnd(b, i)
}

func containerEnd(b []byte, i, depth int) int {
	if depth >= maxDiffDepth {
		return -1
	}
	e := newElements(b[i:], depth, false)
	for _, _, ok := e.next(nil, nil); ok; _, _, ok = e.next(nil, nil) {
	}
	if e.bad {
		return -1
	}
	return i + e.end
}

// stringEnd returns where the string starting at b[i] (a quote) ends, or -1,
// and whether it is plain: ASCII without escapes, its bytes between the
// quotes what it decodes to. Invalid UTF-8 is valid here, as for
// json.Unmarshal, which replaces it.
func stringEnd(b []byte, i int) (end int, plain bool) {
	plain = true
	for i++; i < len(b); i++ {
		c := b[i]
		if !stringSpecial[c] {
			continue
		}
		switch {
		case c == '"':
			return i + 1, plain
		case c < 0x20:
			return -1, false
		case c >= utf8.RuneSelf:
			plain = false
		default: // a backslash
			plain = false
			if i++; i >= len(b) {
				return -1, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1, false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1, false
					}
				}
				i += 4
			default:
				return -1, false
			}
		}
	}
	return -1, false
}

// stringSpecial marks the bytes stringEnd looks at: all others are
// themselves inside a string.
var stringSpecial = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf
	}
	return t
}()

func literalEnd(b []byte, i int, lit string) int {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return -1
	}
	return i + len(lit)
}

// numberEnd returns where the number starting at b[i] ends, or -1 if it is
// not one or is out of float64's range, which json.Unmarshal refuses to
// decode into an interface{}.
func numberEnd(b []byte, i int) int {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digitsEnd(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if j := digitsEnd(b, i+1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	exp := i < len(b) && (b[i] == 'e' || b[i] == 'E')
	if exp {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if j := digitsEnd(b, i); j > i {
			i = j
		} else {
			return -1
		}
	}
	// Without an exponent, only more than 308 digits can overflow.
	if exp || i-start > 300 {
		if _, err := strconv.ParseFloat(string(b[start:i]), 64); err != nil {
			return -1
		}
	}
	return i
}

func digitsEnd(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
