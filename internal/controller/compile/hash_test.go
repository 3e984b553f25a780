package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestHashIsJSONMarshals: Hash is the hash of json.Marshal's bytes, which
// the sync engine and the stored statuses name bodies by, also for values
// the canonical writer leaves to json.Marshal.
func TestHashIsJSONMarshals(t *testing.T) {
	for _, v := range []map[string]any{
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "n", "labels": map[string]any{"b": "2", "a": "1"}}},
		{"escapes": "<a href=\"x\">&amp;\u2028é", "n": 1.5, "i": int64(7), "l": []any{nil, true}},
		{"n": 3, "labels": map[string]string{"a": "b"}},
	} {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got, want := Hash(&unstructured.Unstructured{Object: v}), hex.EncodeToString(sum[:8]); got != want {
			t.Errorf("Hash(%v) = %s, json.Marshal's is %s", v, got, want)
		}
	}
}
