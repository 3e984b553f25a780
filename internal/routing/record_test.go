package routing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/siteid"
)

func id(b byte) siteid.ID { return siteid.ID{15: b} }

func sampleRecord() Record {
	return Record{
		Site: id(1), Name: "aws-east", Seq: 1<<40 + 7,
		Links: []Link{
			{Peer: id(2), Cost: 10, RTT: 3 * time.Millisecond},
			{Peer: id(3), Cost: 0, RTT: 0},
			{Peer: id(4), Cost: ^uint32(0), RTT: time.Duration(1<<63 - 1)},
		},
		Connectors: []Connector{
			{Address: "orders", Protocol: "http", Capacity: 5},
			{Address: "payments", Protocol: "", Capacity: ^uint32(0)},
		},
		Interests: []string{"orders.*", "audit"},
		SealKey:   [SealKeyLen]byte{0: 7, 31: 9},
		Features:  FeatureDirectStreams,
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []Record{
		{Site: id(9)},
		{Site: id(9), Name: "x", Seq: ^uint64(0)},
		sampleRecord(),
		func() Record { // every count at its limit (sizes permitting)
			r := Record{Site: id(1), Name: strings.Repeat("n", MaxNameLen)}
			for i := range MaxLinks {
				r.Links = append(r.Links, Link{Peer: siteid.ID{0: 1, 1: byte(i >> 8), 2: byte(i)}, Cost: uint32(i)})
			}
			for range MaxConnectors {
				r.Connectors = append(r.Connectors, Connector{Address: "a", Protocol: "tcp"})
			}
			for range MaxInterests {
				r.Interests = append(r.Interests, "i")
			}
			return r
		}(),
	} {
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("marshal %q: %v", r.Name, err)
		}
		if len(b) != r.encodedSize() {
			t.Errorf("%q: encoded %d bytes, encodedSize says %d", r.Name, len(b), r.encodedSize())
		}
		var got Record
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("unmarshal %q: %v", r.Name, err)
		}
		if !sameRecord(&got, &r) {
			t.Errorf("round trip changed the record:\n got %+v\nwant %+v", got, r)
		}
	}
}

// TestRecordBounds breaks each rule once and expects Validate and
// MarshalBinary to refuse it, and UnmarshalBinary to refuse its encoding,
// each with ErrInvalidRecord and a message naming the problem.
func TestRecordBounds(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	many := func(n int, f func(i int) Link) []Link {
		out := make([]Link, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	distinct := func(i int) Link { return Link{Peer: siteid.ID{0: 1, 1: byte(i >> 8), 2: byte(i)}} }
	for _, tc := range []struct {
		name string
		edit func(r *Record)
		want string
		// wantDecode, if set, is what decoding says instead: a negative
		// RTT cannot be encoded, its bits decode as a too-large one.
		wantDecode string
	}{
		{"zero site", func(r *Record) { r.Site = siteid.ID{} }, "site ID is zero", ""},
		{"name too long", func(r *Record) { r.Name = long(MaxNameLen + 1) }, "name is 254 bytes, limit 253", ""},
		{"name not UTF-8", func(r *Record) { r.Name = "\xff" }, "name is not valid UTF-8", ""},
		{"too many links", func(r *Record) { r.Links = many(MaxLinks+1, distinct) }, "1025 links, limit 1024", ""},
		{"duplicate peer", func(r *Record) { r.Links = append(r.Links, Link{Peer: id(3), Cost: 1}) }, "links 1 and 3: peer 00000000000000000000000000000003 listed twice", ""},
		{"duplicate peer, many links", func(r *Record) {
			r.Links = many(100, distinct)
			r.Links[99].Peer = r.Links[7].Peer
		}, "links 7 and 99", ""},
		{"link to self", func(r *Record) { r.Links[1].Peer = r.Site }, "link 1: peer is the site itself", ""},
		{"zero peer", func(r *Record) { r.Links[0].Peer = siteid.ID{} }, "link 0: peer ID is zero", ""},
		{"negative RTT", func(r *Record) { r.Links[2].RTT = -time.Second }, "link 2: negative RTT", "link 2: RTT is 18446744072709551616, limit 9223372036854775807"},
		{"too many connectors", func(r *Record) { r.Connectors = make([]Connector, MaxConnectors+1) }, "4097 connectors, limit 4096", ""},
		{"address too long", func(r *Record) { r.Connectors[1].Address = long(MaxAddressLen + 1) }, "connector 1: address is 254 bytes, limit 253", ""},
		{"empty address", func(r *Record) { r.Connectors[0].Address = "" }, "connector 0: address is empty", ""},
		{"protocol too long", func(r *Record) { r.Connectors[0].Protocol = long(MaxProtocolLen + 1) }, "connector 0: protocol is 17 bytes, limit 16", ""},
		{"too many interests", func(r *Record) { r.Interests = make([]string, MaxInterests+1) }, "4097 interests, limit 4096", ""},
		{"interest too long", func(r *Record) { r.Interests[1] = long(MaxInterestLen + 1) }, "interest 1: pattern is 254 bytes, limit 253", ""},
		{"empty interest", func(r *Record) { r.Interests[0] = "" }, "interest 0: pattern is empty", ""},
		{"record too large", func(r *Record) {
			r.Connectors = nil
			for range MaxConnectors {
				r.Connectors = append(r.Connectors, Connector{Address: long(MaxAddressLen), Protocol: long(MaxProtocolLen)})
			}
		}, "encoded size", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sampleRecord()
			tc.edit(&r)
			check := func(what string, err error) {
				t.Helper()
				want := tc.want
				if what == "UnmarshalBinary" && tc.wantDecode != "" {
					want = tc.wantDecode
				}
				if !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: got %v, want ErrInvalidRecord mentioning %q", what, err, want)
				}
			}
			check("Validate", r.Validate())
			_, err := r.MarshalBinary()
			check("MarshalBinary", err)
			var got Record
			before := got
			check("UnmarshalBinary", got.UnmarshalBinary(r.appendTo(nil)))
			if !reflect.DeepEqual(got, before) {
				t.Errorf("UnmarshalBinary changed the record on error")
			}
		})
	}
}

func uv(v uint64) []byte         { return binary.AppendUvarint(nil, v) }
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestRecordDecodeErrors covers encodings no Record can produce.
func TestRecordDecodeErrors(t *testing.T) {
	good := sampleRecord()
	enc := good.appendTo(nil)
	site, peer := id(1), id(2)
	key := make([]byte, 32)
	// header is version, site, key, seq 1 and a name length.
	header := func(nameLen uint64) []byte { return cat([]byte{recordVersion}, site[:], key, uv(1), uv(nameLen)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated reading version"},
		{"bad version", append([]byte{1}, enc[1:]...), "version 1, want 3"},
		{"truncated key", enc[:30], "truncated reading key"},
		{"truncated signature", cat(header(0), uv(0), uv(0), uv(0), make([]byte, 63)), "truncated reading signature"},
		{"truncated site", enc[:10], "truncated reading site ID"},
		{"truncated everywhere", enc[:len(enc)-1], "truncated"},
		{"trailing bytes", append(bytes.Clone(enc), 0), "1 trailing bytes after the signature"},
		{"seq overflows", cat([]byte{recordVersion}, site[:], key, bytes.Repeat([]byte{0xff}, 10), []byte{1}), "seq overflows 64 bits"},
		{"name length over limit", header(254), "name is 254 bytes, limit 253"},
		{"name longer than input", append(header(5), "ab"...), "truncated reading name (5 bytes, 2 left)"},
		{"huge link count", cat(header(0), uv(1<<40)), "1099511627776 links, limit 1024"},
		{"link count beyond input", cat(header(0), uv(1000), make([]byte, 100)), "1000 links need at least 18000 bytes, 100 left"},
		{"cost over 32 bits", cat(header(0), uv(1), peer[:], uv(1<<32), uv(0), uv(0), uv(0)), "link 0: cost is 4294967296, limit 4294967295"},
		{"RTT over int64", cat(header(0), uv(1), peer[:], uv(1), uv(1<<63), uv(0), uv(0)), "link 0: RTT is 9223372036854775808"},
		{"connector count beyond input", cat(header(0), uv(0), uv(5), make([]byte, 10)), "5 connectors need at least 20 bytes"},
		{"capacity over 32 bits", cat(header(0), uv(0), uv(1), uv(1), []byte("a"), uv(0), uv(1<<32), uv(0)), "connector 0: capacity is 4294967296, limit 4294967295"},
		{"protocol length over limit", cat(header(0), uv(0), uv(1), uv(1), []byte("a"), uv(17), make([]byte, 20)), "connector 0: protocol is 17 bytes, limit 16"},
		{"interest length over limit", cat(header(0), uv(0), uv(0), uv(1), uv(300), make([]byte, 300)), "interest 0: pattern is 300 bytes, limit 253"},
		{"seal key of odd length", cat(header(0), uv(0), uv(0), uv(0), uv(1), uv(ExtSealKey), uv(5), make([]byte, 5+64)), "extension 0: seal key of 5 bytes, want 32"},
		{"zero seal key", cat(header(0), uv(0), uv(0), uv(0), uv(1), uv(ExtSealKey), uv(32), make([]byte, 32+64)), "seal key of 32 bytes, want 32 not all zero"},
		{"truncated seal key", cat(header(0), uv(0), uv(0), uv(0), uv(1), uv(ExtSealKey), uv(32), make([]byte, 5)), "truncated reading value (32 bytes, 5 left)"},
		{"extensions out of order", cat(header(0), uv(0), uv(0), uv(0), uv(2), uv(9), uv(0), uv(8), uv(0), make([]byte, 64)), "type 8 after 9"},
		{"extension twice", cat(header(0), uv(0), uv(0), uv(0), uv(2), uv(9), uv(0), uv(9), uv(0), make([]byte, 64)), "type 9 after 9"},
		{"reserved extension type", cat(header(0), uv(0), uv(0), uv(0), uv(1), uv(0), uv(0), make([]byte, 64)), "type 0 is reserved"},
		{"too many extensions", cat(header(0), uv(0), uv(0), uv(0), uv(MaxExtensions+1), make([]byte, 200)), "33 extensions, limit 32"},
		{"extension over its limit", cat(header(0), uv(0), uv(0), uv(0), uv(1), uv(9), uv(MaxExtensionLen+1), make([]byte, 64)), "value length is 65537, limit 65536"},
		{"zero features", cat(header(0), uv(0), uv(0), uv(0), uv(1), uv(ExtFeatures), uv(1), []byte{0}, make([]byte, 64)), "features of 1 bytes are not one canonical non-zero varint"},
		{"padded features", cat(header(0), uv(0), uv(0), uv(0), uv(1), uv(ExtFeatures), uv(2), []byte{0x81, 0}, make([]byte, 64)), "features of 2 bytes"},
		{"features with trailing bytes", cat(header(0), uv(0), uv(0), uv(0), uv(1), uv(ExtFeatures), uv(2), []byte{1, 1}, make([]byte, 64)), "features of 2 bytes"},
		{"empty features", cat(header(0), uv(0), uv(0), uv(0), uv(1), uv(ExtFeatures), uv(0), make([]byte, 64)), "features of 0 bytes"},
		{"bad certificate", cat(header(0), uv(0), uv(0), uv(0), uv(1), uv(ExtCert), uv(3), make([]byte, 3+64)), "invalid operational key certificate"},
		{"over 1 MiB", make([]byte, MaxRecordSize+1), "encoded size 1048577 bytes, limit 1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Record
			err := r.UnmarshalBinary(tc.b)
			if !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrInvalidRecord mentioning %q", err, tc.want)
			}
		})
	}
	// Every strict prefix of a valid encoding is refused, never a panic.
	for i := range enc {
		var r Record
		if err := r.UnmarshalBinary(enc[:i]); err == nil {
			t.Errorf("prefix of %d bytes accepted", i)
		}
	}
}

func FuzzRecordUnmarshal(f *testing.F) {
	for _, r := range []Record{{Site: id(1)}, sampleRecord()} {
		b, err := r.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ext := sampleRecord()
	ext.Policy, ext.SealKey, ext.PrevSealKey = []byte{1}, [SealKeyLen]byte{1}, [SealKeyLen]byte{2}
	ext.Features = FeatureDirectStreams | 1<<40
	ext.Extensions = []Extension{{Type: 9, Value: []byte("x")}, {Type: 300}}
	ext.SignOp(opSigner())
	b, _ := ext.MarshalBinary()
	f.Add(b)
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if err := r.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("error not wrapping ErrInvalidRecord: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded record fails Validate: %v", err)
		}
		// Decoding is not required to be canonical (a varint may be
		// padded), but re-encoding must be, and must decode to the same.
		b2, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if len(b2) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(b2))
		}
		var r2 Record
		if err := r2.UnmarshalBinary(b2); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !sameRecord(&r, &r2) {
			t.Fatalf("re-encoding changed the record:\n%+v\n%+v", r, r2)
		}
		b3, _ := r2.MarshalBinary()
		if !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not stable")
		}
	})
}
