package canonjson

import (
	"bytes"
	"encoding/json"
	"testing"
)

// checkValue fails unless Value writes what json.Marshal does, where it
// handles v at all.
func checkValue(t testing.TB, v any) (ok bool) {
	t.Helper()
	want, err := json.Marshal(v)
	var w Writer
	ok = w.Value(v)
	if err != nil {
		if ok {
			t.Fatalf("Value wrote %q for %#v, which json.Marshal refuses: %v", w.Buf, v, err)
		}
		return ok
	}
	if ok && !bytes.Equal(w.Buf, want) {
		t.Fatalf("Value(%#v)\n got %s\nwant %s", v, w.Buf, want)
	}
	return ok
}

func TestValueIsJSONMarshal(t *testing.T) {
	for _, v := range []map[string]any{
		{},
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "n", "labels": map[string]any{"b": "2", "a": "1"}}},
		{"escapes": "<a href=\"x\">&amp;\\\n\t\u2028é\x01", "bad utf-8": "\xff\xfe", "": "empty key"},
		{"floats": []any{0.0, -0.0, 1.0, 1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, -3.4e38, 5e-324}},
		{"ints": []any{int64(0), int64(-7), int64(1 << 62)}, "bools": []any{true, false}, "null": nil},
		{"nested": []any{map[string]any{"z": []any{}, "a": map[string]any{}}, []any{nil, "x"}}},
		{"nil map": map[string]any(nil), "nil list": []any(nil)},
	} {
		if !checkValue(t, v) {
			t.Errorf("Value does not handle %#v", v)
		}
	}
	// Types Value leaves to json.Marshal.
	if checkValue(t, map[string]any{"n": 3, "labels": map[string]string{"a": "b"}}) {
		t.Error("Value claims to handle int and map[string]string")
	}
}

// FuzzValue compares Value with json.Marshal on every value JSON decodes to.
func FuzzValue(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,null,"x<y"]}`, `[1e21,1e-7,0.1]`, `"\u2028\ufffd"`, `{"z":{"y":{}},"":""}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		if !checkValue(t, v) {
			t.Fatalf("Value does not handle decoded JSON %s", data)
		}
	})
}
