package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/controller/canonjson"
)

// Hash identifies a version of an object: the first 8 bytes of the SHA-256 of its
// JSON, in hex (encoding/json sorts map keys, so equal objects hash equally). It
// is the sync engine's hashObject, so that the hash in a status names the
// released body that was applied.
func Hash(u *unstructured.Unstructured) string {
	w := writers.Get().(*canonjson.Writer)
	defer writers.Put(w)
	w.Buf = w.Buf[:0]
	if w.Value(u.Object) {
		return HashJSON(w.Buf)
	}
	data, err := json.Marshal(u.Object)
	if err != nil {
		panic("compile: unstructured object does not marshal: " + err.Error()) // built from JSON
	}
	return HashJSON(data)
}

// HashJSON is the Hash of the object whose canonical JSON (json.Marshal's)
// is data.
func HashJSON(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

var writers = sync.Pool{New: func() any { return &canonjson.Writer{} }}
