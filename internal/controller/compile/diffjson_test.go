package compile

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodedDiff is what Plan diffed before diffJSON: both bodies decoded into
// maps, one that does not decode taken as absent.
func decodedDiff(old, new []byte) []FieldChange {
	decode := func(data []byte) map[string]any {
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			return nil
		}
		return m
	}
	return Diff(decode(old), decode(new))
}

// TestDiffJSONIsDecodedDiff: walking the bytes finds what decoding both
// bodies finds, and takes the walk (ok) for every pair of JSON objects it
// can be sure of.
func TestDiffJSONIsDecodedDiff(t *testing.T) {
	deep := strings.Repeat(`{"a":`, maxDiffDepth+1) + "1" + strings.Repeat("}", maxDiffDepth+1)
	for _, tc := range []struct {
		name     string
		old, new string
		walked   bool // diffJSON answers rather than leaving it to decoding
	}{
		{"equal", `{"a":1,"b":{"c":[1,2]}}`, `{"a":1,"b":{"c":[1,2]}}`, true},
		{"label added", `{"metadata":{"labels":{"a":"1"},"name":"n"},"spec":{"x":[1,{"y":2}]}}`,
			`{"metadata":{"labels":{"a":"1","bench":"older"},"name":"n"},"spec":{"x":[1,{"y":2}]}}`, true},
		{"leaf changed deep", `{"s":{"l":[{"a":1,"b":"x"},{"a":2}]}}`, `{"s":{"l":[{"a":1,"b":"y"},{"a":3,"c":null}]}}`, true},
		{"member added and removed", `{"a":1,"c":{"d":true},"e":null}`, `{"b":[1],"c":{"d":true}}`, true},
		{"array grows and shrinks", `{"a":[1,2,3],"b":[]}`, `{"a":[1],"b":[{"x":1},null]}`, true},
		{"type changes", `{"a":{"x":1},"b":[1],"c":"s","d":null,"e":1}`, `{"a":[1],"b":{"x":1},"c":2,"d":{},"e":"1"}`, true},
		{"equal numbers, other bytes", `{"a":1,"b":[100,-0]}`, `{"a":1.0,"b":[1e2,0]}`, true},
		{"equal strings, other bytes", `{"a":"\u0041\/","b":"\u00e9"}`, `{"a":"A/","b":"é"}`, true},
		{"invalid UTF-8 both replaced", "{\"a\":\"\xff\"}", "{\"a\":\"\xfe\"}", true},
		{"invalid UTF-8 keys both replaced", "{\"\xff\":1,\"z\":1}", "{\"\xfe\":1,\"z\":2}", true},
		{"non-ASCII keys", `{"é":1,"ü":[1]}`, `{"é":2,"ü":[1]}`, true},
		{"keys with escapes", `{"\u0061":1,"b\"c":2}`, `{"a":1,"b\"c":3}`, true},
		{"key escapes out of order", `{"\u0062":1,"a":2}`, `{"a":2,"b":1}`, true},
		{"space", " {\n \"a\" : [ 1 , 2 ] ,\"b\":{ }}\t", `{"a":[1,3],"b":{}}`, true},
		{"unsorted keys", `{"b":1,"a":{"y":1,"x":2}}`, `{"a":{"x":2,"y":1},"b":2}`, true},
		{"repeated key, last wins", `{"a":1,"a":2}`, `{"a":2}`, true},
		{"repeated nested key", `{"m":{"k":"old","k":"new"},"z":1}`, `{"m":{"k":"new"},"z":2}`, true},
		{"empty objects", `{}`, `{"a":{}}`, true},
		{"number extends the other's", `{"k":1,"z":[1]}`, `{"k":12,"z":[1]}`, true},
		{"literal extends the other's", `{"k":[true]}`, `{"k":[true,1]}`, true},
		{"bytes after an equal string", `{"k":"x","z":1}`, `{"k":"x"1,"z":1}`, false},
		{"bytes after an equal array", `{"k":[1],"z":1}`, `{"k":[1]],"z":1}`, false},
		{"top-level null", `null`, `{"a":1}`, false},
		{"top-level array", `[]`, `{"a":1}`, false},
		{"not JSON", `not json`, `{"a":1}`, false},
		{"equal, not JSON", `{"a":}`, `{"a":}`, false},
		{"trailing bytes", `{"a":1} x`, `{"a":2}`, false},
		{"truncated", `{"a":[1,2`, `{"a":[1]}`, false},
		{"bad escape", `{"a":"\x","b":1}`, `{"a":"\x","b":2}`, false},
		{"control character", "{\"a\":\"\x01\",\"b\":1}", "{\"a\":\"\x01\",\"b\":2}", false},
		{"number out of range", `{"a":1e400,"b":1}`, `{"a":1e400,"b":2}`, false},
		{"long integer out of range", `{"a":1` + strings.Repeat("0", 400) + `}`, `{"a":1}`, false},
		{"bad number", `{"a":01}`, `{"a":1}`, false},
		{"too deep", deep, `{"a":1}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := decodedDiff([]byte(tc.old), []byte(tc.new))
			got, ok := diffJSON([]byte(tc.old), []byte(tc.new))
			if ok != tc.walked {
				t.Errorf("diffJSON ok = %v, want %v", ok, tc.walked)
			}
			if ok && !reflect.DeepEqual(got, want) {
				t.Errorf("diffJSON = %#v\n decoding both = %#v", got, want)
			}
			if got := bodyDiff(Object{Raw: []byte(tc.old)}, Object{Raw: []byte(tc.new)}); !reflect.DeepEqual(got, want) {
				t.Errorf("bodyDiff = %#v\n decoding both = %#v", got, want)
			}
		})
	}
}

// FuzzDiffJSON: wherever diffJSON answers, it answers what decoding both
// bodies does, and it answers for no body json.Unmarshal refuses.
func FuzzDiffJSON(f *testing.F) {
	for _, s := range [][2]string{
		{`{"metadata":{"labels":{"a":"1"}},"spec":{"x":[1,{"y":2}]}}`, `{"metadata":{"labels":{"a":"1","b":"2"}},"spec":{"x":[1,{"y":3}]}}`},
		{`{"a":[1,2,3],"b":{"c":null}}`, `{"a":[1.0,2],"b":{"d":"\u00e9"}}`},
		{`{"b":1,"a":2,"a":3}`, `{"a":3,"b":[true,false]}`},
		{`{"a":1e308,"b":-0.5e-3}`, `{"a":1e309}`},
		{"{\"\xff\":\"\\ud800\"}", "{\"\\ufffd\":\"\xef\xbf\xbd\"}"},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, old, new []byte) {
		got, ok := diffJSON(old, new)
		if !ok {
			return
		}
		for _, data := range [][]byte{old, new} {
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil || m == nil {
				t.Fatalf("diffJSON walked %q, which does not decode to a map: %v", data, err)
			}
		}
		if want := decodedDiff(old, new); !reflect.DeepEqual(got, want) {
			t.Fatalf("diffJSON(%q, %q) = %#v\n decoding both = %#v", old, new, got, want)
		}
		// Both ways, and each with itself: the pairs a fuzzer rarely finds.
		for _, p := range [][2][]byte{{new, old}, {old, old}, {new, new}} {
			got, ok := diffJSON(p[0], p[1])
			if want := decodedDiff(p[0], p[1]); !ok || !reflect.DeepEqual(got, want) {
				t.Fatalf("diffJSON(%q, %q) = %#v, %v\n decoding both = %#v", p[0], p[1], got, ok, want)
			}
		}
	})
}

// BenchmarkDiffJSON diffs the benchmark's changed object (a label added)
// by walking its bytes and by decoding both.
func BenchmarkDiffJSON(b *testing.B) {
	old := []byte(`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"labels":{"app.kubernetes.io/managed-by":"weft","bench":"older","weft.dev/intent":"i00001","weft.dev/project":"p"},"name":"s0001-mtls","namespace":"ns1"},"spec":{"host":"s0001.ns1.svc.cluster.local","trafficPolicy":{"connectionPool":{"tcp":{"maxConnections":10}},"outlierDetection":{"baseEjectionTime":"30s","consecutive5xxErrors":5,"interval":"10s","maxEjectionPercent":50},"tls":{"mode":"ISTIO_MUTUAL"}}}}`)
	new := []byte(`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"labels":{"app.kubernetes.io/managed-by":"weft","weft.dev/intent":"i00001","weft.dev/project":"p"},"name":"s0001-mtls","namespace":"ns1"},"spec":{"host":"s0001.ns1.svc.cluster.local","trafficPolicy":{"connectionPool":{"tcp":{"maxConnections":10}},"outlierDetection":{"baseEjectionTime":"30s","consecutive5xxErrors":5,"interval":"10s","maxEjectionPercent":50},"tls":{"mode":"ISTIO_MUTUAL"}}}}`)
	b.Run("walk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := diffJSON(old, new); !ok {
				b.Fatal("not walked")
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decodedDiff(old, new)
		}
	})
}
