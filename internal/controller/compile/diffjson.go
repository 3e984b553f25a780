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
	a, b := bytes.TrimLeft(old, jsonSpace), bytes.TrimLeft(new, jsonSpace)
	if len(a) == 0 || len(b) == 0 || a[0] != '{' || b[0] != '{' {
		return nil, false
	}
	// Validated before the walk, which skips values only once it has
	// found where they end.
	for _, v := range [][]byte{a, b} {
		if end := valueEnd(v, 0, 0); end < 0 || skipSpace(v, end) != len(v) {
			return nil, false
		}
	}
	if !diffRaw("", a, b, 0, &out) {
		return nil, false
	}
	if len(out) == 0 {
		return nil, true
	}
	return out, true
}

const jsonSpace = " \t\r\n"

// diffRaw appends the changes between the valid JSON values a and b (no
// surrounding space) under path, as diff would between their decodings.
// It is false if a leaf does not decode.
func diffRaw(path string, a, b []byte, depth int, out *[]FieldChange) bool {
	switch {
	case bytes.Equal(a, b):
		return true
	case a[0] == '{' && b[0] == '{':
		return diffObjects(path, a, b, depth, out)
	case a[0] == '[' && b[0] == '[':
		return diffArrays(path, a, b, depth, out)
	}
	return diffDecoded(path, a, b, out)
}

// diffObjects merges the members of two objects by key, in the order diff
// visits them.
func diffObjects(path string, a, b []byte, depth int, out *[]FieldChange) bool {
	mark := len(*out)
	ai, bi := elements{b: a, depth: depth}, elements{b: b, depth: depth}
	ak, av, aok := ai.next()
	bk, bv, bok := bi.next()
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
			ok = diffDecoded(memberPath(path, ak), av, nil, out)
		case c > 0:
			ok = diffDecoded(memberPath(path, bk), nil, bv, out)
		case bytes.Equal(av, bv):
			ok = true
		default:
			ok = diffRaw(memberPath(path, ak), av, bv, depth+1, out)
		}
		if !ok {
			return false
		}
		if c <= 0 {
			prev := ak
			ak, av, aok = ai.next()
			sorted = !aok || bytes.Compare(prev, ak) < 0
		}
		if c >= 0 && sorted {
			prev := bk
			bk, bv, bok = bi.next()
			sorted = !bok || bytes.Compare(prev, bk) < 0
		}
	}
	if !sorted {
		// Keys out of order or repeated: a map decides which is which.
		*out = (*out)[:mark]
		return diffDecoded(path, a, b, out)
	}
	return true
}

// diffArrays compares two arrays element by element, as diff does.
func diffArrays(path string, a, b []byte, depth int, out *[]FieldChange) bool {
	ai, bi := elements{b: a, depth: depth}, elements{b: b, depth: depth}
	for i := 0; ; i++ {
		_, av, aok := ai.next()
		_, bv, bok := bi.next()
		if !aok && !bok {
			return true
		}
		if aok && bok && bytes.Equal(av, bv) {
			continue
		}
		p := path + "[" + strconv.Itoa(i) + "]"
		var ok bool
		if aok && bok {
			ok = diffRaw(p, av, bv, depth+1, out)
		} else {
			ok = diffDecoded(p, av, bv, out)
		}
		if !ok {
			return false
		}
	}
}

func memberPath(path string, key []byte) string {
	if path == "" {
		return string(key)
	}
	return path + "." + string(key)
}

// diffDecoded is diff of the decodings of a and b, nil for an absent value.
func diffDecoded(path string, a, b []byte, out *[]FieldChange) bool {
	var av, bv any
	if a != nil && json.Unmarshal(a, &av) != nil {
		return false
	}
	if b != nil && json.Unmarshal(b, &bv) != nil {
		return false
	}
	diff(path, av, bv, out)
	return true
}

// elements iterates over the members of a valid JSON object or the
// elements of a valid array, b.
type elements struct {
	b     []byte
	i     int
	depth int
	done  bool // the closing bracket was reached
}

// next returns the next member's decoded key (nil for an array) and its
// value, without surrounding space; ok is false at the end.
func (e *elements) next() (key, value []byte, ok bool) {
	if e.done {
		return nil, nil, false
	}
	i := skipSpace(e.b, e.i+1) // past the opening bracket or the last comma
	if e.b[i] == '}' || e.b[i] == ']' {
		e.done = true
		return nil, nil, false
	}
	if e.b[0] == '{' {
		end := stringEnd(e.b, i)
		key = decodedKey(e.b[i:end])
		i = skipSpace(e.b, skipSpace(e.b, end)+1) // past the colon
	}
	end := valueEnd(e.b, i, e.depth+1)
	value, e.i = e.b[i:end], skipSpace(e.b, end)
	if e.b[e.i] != ',' {
		e.done = true
	}
	return key, value, true
}

// decodedKey is the string the quoted key q decodes to: q's bytes, unless
// it has escapes or bytes json.Unmarshal replaces (invalid UTF-8).
func decodedKey(q []byte) []byte {
	s := q[1 : len(q)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
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
		return stringEnd(b, i)
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
	obj := b[i] == '{'
	close := byte(']')
	if obj {
		close = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == close {
		return i + 1
	}
	for {
		if obj {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i = stringEnd(b, i); i < 0 {
				return -1
			}
			if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
		if i = valueEnd(b, i, depth+1); i < 0 {
			return -1
		}
		switch i = skipSpace(b, i); {
		case i >= len(b):
			return -1
		case b[i] == close:
			return i + 1
		case b[i] != ',':
			return -1
		}
		i = skipSpace(b, i+1)
	}
}

// stringEnd returns where the string starting at b[i] (a quote) ends, or -1.
// Invalid UTF-8 is valid here, as for json.Unmarshal, which replaces it.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			if i++; i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

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
