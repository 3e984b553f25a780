package compile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// marshalHash is Hash as it was, through json.Marshal: the sync engine and
// the stored statuses name bodies by it.
func marshalHash(t testing.TB, v map[string]any) string {
	t.Helper()
	u := &unstructured.Unstructured{Object: v}
	data, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// checkCanonical fails unless canonicalJSON writes what json.Marshal does,
// where it handles v at all.
func checkCanonical(t testing.TB, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	got, ok := canonicalJSON(v)
	if err != nil {
		if ok {
			t.Fatalf("canonicalJSON wrote %q for %#v, which json.Marshal refuses: %v", got, v, err)
		}
		return
	}
	if ok && !bytes.Equal(got, want) {
		t.Fatalf("canonicalJSON(%#v)\n got %s\nwant %s", v, got, want)
	}
}

func TestHashIsJSONMarshals(t *testing.T) {
	for _, v := range []map[string]any{
		{},
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "n", "labels": map[string]any{"b": "2", "a": "1"}}},
		{"escapes": "<a href=\"x\">&amp;\\\n\t\u2028é\x01", "bad utf-8": "\xff\xfe", "": "empty key"},
		{"floats": []any{0.0, -0.0, 1.0, 1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, -3.4e38, 5e-324}},
		{"ints": []any{int64(0), int64(-7), int64(1 << 62)}, "bools": []any{true, false}, "null": nil},
		{"nested": []any{map[string]any{"z": []any{}, "a": map[string]any{}}, []any{nil, "x"}}},
		{"nil map": map[string]any(nil), "nil list": []any(nil)},
	} {
		checkCanonical(t, v)
		if got, want := Hash(&unstructured.Unstructured{Object: v}), marshalHash(t, v); got != want {
			t.Errorf("Hash(%v) = %s, json.Marshal's is %s", v, got, want)
		}
	}
	// Types canonicalJSON leaves to json.Marshal still hash as before.
	odd := map[string]any{"n": 3, "labels": map[string]string{"a": "b"}}
	if _, ok := canonicalJSON(odd); ok {
		t.Error("canonicalJSON claims to handle int and map[string]string")
	}
	if got, want := Hash(&unstructured.Unstructured{Object: odd}), marshalHash(t, odd); got != want {
		t.Errorf("Hash of a value for json.Marshal = %s, want %s", got, want)
	}
}

// FuzzCanonicalJSON compares canonicalJSON with json.Marshal on every value
// JSON decodes to.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,null,"x<y"]}`, `[1e21,1e-7,0.1]`, `"\u2028\ufffd"`, `{"z":{"y":{}},"":""}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		checkCanonical(t, v)
		if _, ok := canonicalJSON(v); !ok {
			t.Fatalf("canonicalJSON does not handle decoded JSON %s", data)
		}
	})
}
