package site

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/opkey"
)

// Fixed identities and a fixed TLS exporter value for handshake tests: "a"
// is the site under test, "b" its peer.
var (
	keyA        = testSiteKey(1)
	keyB        = testSiteKey(2)
	testBinding = bytes.Repeat([]byte{7}, 32)
)

func testSiteKey(seed byte) *identity.SiteKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	der, err := x509MarshalEd25519(ed25519.NewKeyFromSeed(s))
	if err != nil {
		panic(err)
	}
	k, err := identity.ParseSiteKey(der)
	if err != nil {
		panic(err)
	}
	return k
}

// peerHello is a hello from b (or from key) in role, proving key on
// binding.
func peerHello(name string, cost uint32, key *identity.SiteKey, role string, binding []byte) []byte {
	return encodeControl(ctlHello, hello{Name: name, Cost: cost, Key: key.Public(), Proof: key.Sign(helloMessage(role, binding))})
}

// keyProof is JSON for a key and proof of the right sizes.
var keyProof = `"key":"` + strings.Repeat("A", 43) + `=","proof":"` + strings.Repeat("A", 86) + `=="`

func TestDecodeHello(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{`{"name":"east","cost":10,` + keyProof + `}`, ""},
		{`{"name":"east","cost":10}`, "key of 0 bytes"},
		{`{"name":"east","cost":10,"key":"AAAA","proof":"AAAA"}`, "key of 3 bytes"},
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
	f.Add([]byte(`{"name":"east","cost":10,` + keyProof + `}`))
	f.Add([]byte(`{"name":"a","cost":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHello(b)
		if err == nil && (h.Cost > maxLinkCost || h.Name == "" || !json.Valid(b)) {
			t.Fatalf("accepted invalid hello %+v from %q", h, b)
		}
	})
}

// step is one input to a handshake and what must come out.
type step struct {
	in      string // "start", "timeout", or a control message: "hello NAME COST", "record", "refuse REASON", "raw HEX-ish"
	send    string // the hello it sends, "NAME COST", or ""
	up      bool
	record  bool
	revoke  bool
	refused string // the refusal's reason
	closes  string // part of the close reason, "" for none
	// withdrawn: the dialer deleted the link, to be forgotten here
	withdrawn bool
}

// msg is the step's control message; a hello comes from the peer, which
// has the other role than the site under test.
func (st step) msg(t *testing.T, inbound bool) []byte {
	role := roleAcceptor
	if inbound {
		role = roleDialer
	}
	other := map[string]string{roleAcceptor: roleDialer, roleDialer: roleAcceptor}[role]
	f := strings.Fields(st.in)
	switch f[0] {
	case "hello":
		return peerHello(f[1], uint32(atoi(t, f[2])), keyB, role, testBinding)
	case "forged-hello": // b's key, proof by another key
		m := peerHello("b", 1, keyB, role, testBinding)
		return bytes.Replace(m, []byte(jsonB64(keyB.Sign(helloMessage(role, testBinding)))), []byte(jsonB64(keyA.Sign(helloMessage(role, testBinding)))), 1)
	case "replayed-hello": // a proof made on another connection
		return peerHello("b", 1, keyB, role, bytes.Repeat([]byte{8}, 32))
	case "reflected-hello": // the proof of the other role
		return peerHello("b", 1, keyB, other, testBinding)
	case "self-hello": // our own key
		return peerHello("b", 1, keyA, role, testBinding)
	case "record":
		return []byte{ctlRecord, 'r'}
	case "revoke":
		return []byte{ctlRevoke, 'r'}
	case "refuse":
		return encodeControl(ctlRefuse, refusal{Reason: f[1], Message: "because"})
	case "empty":
		return nil
	case "unknown":
		return []byte{99, 1, 2}
	case "withdraw":
		return []byte{ctlWithdraw}
	case "garbage-hello":
		return []byte{ctlHello, '{'}
	}
	t.Fatalf("unknown step %q", st.in)
	return nil
}

func atoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name    string
		inbound bool
		steps   []step
	}{
		{"dialer: hello, then up on the issuer's hello, then records", false, []step{
			{in: "start", send: "a 10"},
			{in: "hello b 10", up: true},
			{in: "record", record: true},
			{in: "revoke", revoke: true},
			{in: "timeout"}, // too late to matter
		}},
		{"acceptor: answers the hello with the dialer's cost", true, []step{
			{in: "start"},
			{in: "hello b 7", send: "a 7", up: true},
			{in: "record", record: true},
		}},
		{"acceptor: cost 0 becomes 1", true, []step{
			{in: "hello b 0", send: "a 1", up: true},
		}},
		{"dialer: refused for good", false, []step{
			{in: "start", send: "a 1"},
			{in: "refuse revoked", refused: "revoked", closes: "refused by the issuing site: because"},
			{in: "hello b 1"}, // over: ignored
		}},
		{"revocation passes once up, not before", true, []step{
			{in: "revoke", closes: "revocation before the hello"},
		}},
		{"record before hello closes", true, []step{
			{in: "record", closes: "before the hello"},
		}},
		{"second hello closes", true, []step{
			{in: "hello b 1", send: "a 1", up: true},
			{in: "hello b 1", closes: "second hello"},
		}},
		{"acceptor never takes a refusal", true, []step{
			{in: "refuse revoked", closes: "out of turn"},
		}},
		{"refusal after up closes", false, []step{
			{in: "start", send: "a 1"},
			{in: "hello b 1", up: true},
			{in: "refuse revoked", closes: "out of turn"},
		}},
		{"unknown reason closes", false, []step{
			{in: "refuse bored", closes: "unknown reason"},
		}},
		{"no hello in time", true, []step{
			{in: "timeout", closes: "no hello in time"},
		}},
		{"bad hello", true, []step{
			{in: "garbage-hello", closes: "hello: malformed"},
		}},
		{"empty message", true, []step{
			{in: "empty", closes: "empty control message"},
		}},
		{"acceptor: a withdrawal forgets the link and closes", true, []step{
			{in: "hello b 1", send: "a 1", up: true},
			{in: "withdraw", withdrawn: true, closes: "deleted by the dialing site"},
			{in: "record"}, // over: ignored
		}},
		{"withdrawal before the hello closes", true, []step{
			{in: "withdraw", closes: "out of turn"},
		}},
		{"dialer never takes a withdrawal", false, []step{
			{in: "start", send: "a 1"},
			{in: "hello b 1", up: true},
			{in: "withdraw", closes: "out of turn"},
		}},
		{"acceptor: a hello whose proof another key made closes", true, []step{
			{in: "forged-hello", closes: "did not prove"},
		}},
		{"dialer: a proof from another connection closes", false, []step{
			{in: "start", send: "a 1"},
			{in: "replayed-hello", closes: "did not prove"},
		}},
		{"acceptor: a proof reflected from the other role closes", true, []step{
			{in: "reflected-hello", closes: "did not prove"},
		}},
		{"acceptor: the peer cannot be this site", true, []step{
			{in: "self-hello", closes: "this site itself"},
		}},
		{"unknown types are skipped", true, []step{
			{in: "unknown"},
			{in: "hello b 1", send: "a 1", up: true},
			{in: "unknown"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &handshake{inbound: tt.inbound, self: "a", key: keyA, binding: testBinding}
			for i, st := range tt.steps {
				var a hsAction
				switch st.in {
				case "start":
					cost := uint32(0)
					if !tt.inbound {
						cost = uint32(atoi(t, strings.Fields(st.send)[1]))
					}
					a = h.start(cost)
				case "timeout":
					a = h.timeout()
				default:
					a = h.control(st.msg(t, tt.inbound))
				}
				if a.up && h.site != keyB.ID() {
					t.Fatalf("step %d: up with peer %s, want b's key-derived %s", i, h.site, keyB.ID())
				}
				got := ""
				if a.send != nil {
					hl, err := decodeHello(a.send[1:])
					if a.send[0] != ctlHello || err != nil {
						t.Fatalf("step %d: sent %q", i, a.send)
					}
					// The peer can check our proof.
					peer := &handshake{inbound: !tt.inbound, key: keyB, binding: testBinding}
					if site, err := peer.checkProof(hl); err != nil || site != keyA.ID() {
						t.Fatalf("step %d: our hello does not prove a: %v", i, err)
					}
					got = fmt.Sprintf("%s %d", hl.Name, hl.Cost)
				}
				refused := ""
				if a.refused != nil {
					refused = a.refused.Reason
				}
				closes := a.close != nil && st.closes != "" && strings.Contains(a.close.Error(), st.closes)
				if got != st.send || a.up != st.up || (a.record != nil) != st.record || (a.revoke != nil) != st.revoke || refused != st.refused || a.withdrawn != st.withdrawn ||
					(a.close != nil) != (st.closes != "") || a.close != nil && !closes {
					t.Fatalf("step %d (%s): send %q up %v record %v refused %q withdrawn %v close %v; want %+v", i, st.in, got, a.up, a.record != nil, refused, a.withdrawn, a.close, st)
				}
			}
		})
	}
}

func FuzzHandshake(f *testing.F) {
	f.Add(true, []byte{ctlHello, '{', '}', 0, ctlRecord, 1})
	f.Add(false, append(peerHello("b", 3, keyB, roleAcceptor, testBinding), append([]byte{0}, encodeControl(ctlRefuse, refusal{Reason: "revoked"})...)...))
	f.Add(true, append(peerHello("b", 3, keyB, roleDialer, testBinding), 0, ctlRecord, 1))
	opB, _ := opkey.New(keyB.Private(), 1, time.Now(), time.Hour)
	reproof := (&handshake{key: keyB, binding: testBinding}).reprove(opB)
	f.Add(true, append(append(peerHello("b", 3, keyB, roleDialer, testBinding), 0), reproof...))
	f.Fuzz(func(t *testing.T, inbound bool, in []byte) {
		h := &handshake{inbound: inbound, self: "a", key: keyA, binding: testBinding}
		h.start(1)
		ups := 0
		for _, msg := range bytes.Split(in, []byte{0}) {
			a := h.control(msg)
			if a.up {
				ups++
			}
			if a.record != nil && h.phase != linkUp {
				t.Fatalf("a record passed in phase %d", h.phase)
			}
			if a.up && h.peer.Cost == 0 {
				t.Fatal("up with cost 0")
			}
			if a.up && h.site != keyB.ID() {
				t.Fatalf("up with an unproven peer %s", h.site)
			}
		}
		if ups > 1 {
			t.Fatalf("up %d times", ups)
		}
	})
}

func jsonB64(b []byte) string { return strings.Trim(string(mustJSON(b)), `"`) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func x509MarshalEd25519(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// A new proof on a live session (ctlReprove) by a certified operational key
// of the peer's site becomes the session's signer; one before the hello,
// of another site, or by a revoked key closes the session.
func TestReprove(t *testing.T) {
	now := time.Now()
	opB, err := opkey.New(keyB.Private(), 1, now, time.Hour)
	must(t, err)
	opOther, err := opkey.New(keyA.Private(), 1, now, time.Hour)
	must(t, err)
	revoked := map[string]bool{}
	newHS := func() *handshake {
		return &handshake{inbound: true, self: "a", key: keyA, binding: testBinding, now: now,
			revoked: func(k []byte) bool { return revoked[string(k)] }}
	}
	// b's side of the session, to make its proofs.
	peer := &handshake{inbound: false, self: "b", key: keyB, binding: testBinding}

	h := newHS()
	if a := h.control(peer.reprove(opB)); a.close == nil {
		t.Fatal("a new proof before the hello was taken")
	}
	h = newHS()
	if a := h.control(peerHello("b", 1, keyB, roleDialer, testBinding)); !a.up {
		t.Fatalf("hello: %v", a.close)
	}
	if !h.signer.Equal(keyB.Public()) {
		t.Fatal("the identity key did not prove the session")
	}
	if a := h.control(peer.reprove(opB)); a.close != nil || !h.signer.Equal(opB.Public()) {
		t.Fatalf("reprove: %v, signer %x", a.close, h.signer)
	}
	revoked[string(opB.Public())] = true
	if a := h.control(peer.reprove(opB)); a.close == nil {
		t.Fatal("a proof by a revoked key was taken")
	}
	h = newHS()
	h.control(peerHello("b", 1, keyB, roleDialer, testBinding))
	if a := h.control(peer.reprove(opOther)); a.close == nil {
		t.Fatal("a proof of another site on b's session was taken")
	}
}
