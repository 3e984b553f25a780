package site

import (
	"strings"
	"testing"
)

func TestDecodeHello(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{`{"name":"east","cost":10}`, ""},
		{`{"name":"east","cost":10,"x":1}`, "unknown field"},
		{`{"name":"East","cost":1}`, "metadata.name"},
		{`{"name":"east","cost":99999999}`, "over the limit"},
		{`{"name":"east"} {}`, "trailing"},
		{`[`, "malformed"},
		{`{"name":"` + strings.Repeat("a", 5000) + `"}`, "over the limit"},
	} {
		_, err := decodeHello([]byte(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("decodeHello(%.40q) = %v, want error containing %q", tc.in, err, tc.err)
		}
	}
}

func FuzzDecodeHello(f *testing.F) {
	f.Add([]byte(`{"name":"east","cost":10}`))
	f.Add([]byte(`{"name":"a","cost":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHello(b)
		if err == nil && (h.Cost > maxLinkCost || h.Name == "") {
			t.Fatalf("accepted invalid hello %+v", h)
		}
	})
}
