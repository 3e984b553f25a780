package identity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"weft.dev/weft/internal/opkey"
	"weft.dev/weft/internal/siteid"
)

func goodRequest() *RedeemRequest {
	return &RedeemRequest{
		TokenID:   "0123456789abcdef",
		Secret:    strings.Repeat("A", 43),
		SiteID:    siteid.ID{1, 2, 3},
		SiteName:  "west",
		CSR:       bytes.Repeat([]byte{0x30}, 250),
		Addresses: []string{"10.0.0.2:7443", "[::1]:7443"},
		Key:       bytes.Repeat([]byte{1}, 32),
		Proof:     bytes.Repeat([]byte{2}, 64),
	}
}

func goodResponse() *RedeemResponse {
	return &RedeemResponse{CertPEM: []byte("-----BEGIN CERTIFICATE-----\n...\n"), IssuerID: siteid.ID{9}, IssuerName: "east"}
}

func frame(body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(b, body...)
}

func TestMessageRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	req := goodRequest()
	if err := WriteMessage(&buf, req); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRequest(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, req) {
		t.Fatalf("got %+v, want %+v", got, req)
	}
	for _, resp := range []*RedeemResponse{goodResponse(), {Code: CodeExpired, Message: ErrTokenExpired.Error()}} {
		buf.Reset()
		if err := WriteMessage(&buf, resp); err != nil {
			t.Fatal(err)
		}
		got, err := ReadResponse(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, resp) {
			t.Fatalf("got %+v, want %+v", got, resp)
		}
	}
}

func TestReadRequestRejects(t *testing.T) {
	mutate := func(f func(*RedeemRequest)) []byte {
		r := goodRequest()
		f(r)
		var buf bytes.Buffer
		if err := WriteMessage(&buf, r); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	good := string(mutate(func(*RedeemRequest) {})[4:])
	huge := binary.BigEndian.AppendUint32(nil, MaxMessageSize+1)
	tests := map[string][]byte{
		"zero length":      frame(""),
		"too long":         huge,
		"not JSON":         frame("hello"),
		"unknown field":    frame(strings.Replace(good, `{`, `{"admin":true,`, 1)),
		"trailing value":   frame(good + `{}`),
		"trailing garbage": frame(good + `x`),
		"null":             frame("null"),
		"array":            frame("[]"),
		"bad site ID":      frame(strings.Replace(good, siteid.ID{1, 2, 3}.String(), "zz", 1)),
		"no token ID":      mutate(func(r *RedeemRequest) { r.TokenID = "" }),
		"token ID charset": mutate(func(r *RedeemRequest) { r.TokenID = "../etc" }),
		"long secret":      mutate(func(r *RedeemRequest) { r.Secret = strings.Repeat("a", maxSecretLen+1) }),
		"zero site":        mutate(func(r *RedeemRequest) { r.SiteID = siteid.ID{} }),
		"no name":          mutate(func(r *RedeemRequest) { r.SiteName = "" }),
		"long name":        mutate(func(r *RedeemRequest) { r.SiteName = strings.Repeat("n", maxNameLen+1) }),
		"control in name":  mutate(func(r *RedeemRequest) { r.SiteName = "a\x1b[2Jb" }),
		"no CSR":           mutate(func(r *RedeemRequest) { r.CSR = nil }),
		"huge CSR":         mutate(func(r *RedeemRequest) { r.CSR = make([]byte, maxCSRLen+1) }),
		"many addresses":   mutate(func(r *RedeemRequest) { r.Addresses = make([]string, maxAddrs+1) }),
		"empty address":    mutate(func(r *RedeemRequest) { r.Addresses = []string{""} }),
		"long address":     mutate(func(r *RedeemRequest) { r.Addresses = []string{strings.Repeat("h", maxAddrLen+1)} }),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ReadRequest(bytes.NewReader(in))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
	// A short read is an I/O problem, not a malformed message.
	full := mutate(func(*RedeemRequest) {})
	for _, n := range []int{0, 2, 4, 10} {
		_, err := ReadRequest(bytes.NewReader(full[:n]))
		if err == nil || errors.Is(err, ErrMalformed) || !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			t.Errorf("truncated at %d: err = %v, want EOF", n, err)
		}
	}
}

func TestReadResponseRejects(t *testing.T) {
	mutate := func(f func(*RedeemResponse)) []byte {
		r := goodResponse()
		f(r)
		var buf bytes.Buffer
		if err := WriteMessage(&buf, r); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	tests := map[string][]byte{
		"no cert":             mutate(func(r *RedeemResponse) { r.CertPEM = nil }),
		"huge cert":           mutate(func(r *RedeemResponse) { r.CertPEM = make([]byte, maxCertPEMLen+1) }),
		"no issuer":           mutate(func(r *RedeemResponse) { r.IssuerID = siteid.ID{} }),
		"no issuer name":      mutate(func(r *RedeemResponse) { r.IssuerName = "" }),
		"failure with cert":   mutate(func(r *RedeemResponse) { r.Code = CodeExpired }),
		"code charset":        mutate(func(r *RedeemResponse) { r.Code, r.CertPEM = "no way", nil }),
		"long message":        mutate(func(r *RedeemResponse) { r.Message = strings.Repeat("m", maxMessageLen+1) }),
		"control in message":  mutate(func(r *RedeemResponse) { r.Message = "\x07" }),
		"unknown field":       frame(`{"code":"expired","extra":1}`),
		"wrong type for code": frame(`{"code":5}`),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ReadResponse(bytes.NewReader(in)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestWriteMessageTooLarge(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMessage(&buf, strings.Repeat("x", MaxMessageSize)); err == nil {
		t.Fatal("oversized message written")
	}
	if buf.Len() != 0 {
		t.Fatal("partial write of oversized message")
	}
}

func TestErrorCodes(t *testing.T) {
	tests := []struct {
		err  error
		code string
		back error
	}{
		{nil, CodeOK, nil},
		{ErrTokenExpired, CodeExpired, ErrTokenExpired},
		{ErrTokenUsedUp, CodeUsedUp, ErrTokenUsedUp},
		{ErrTokenUnknown, CodeUnknown, ErrTokenUnknown},
		{ErrTokenAlreadyRedeemed, CodeAlreadyRedeemed, ErrTokenAlreadyRedeemed},
		{ErrTokenBadSecret, CodeBadSecret, ErrTokenBadSecret},
		{fmt.Errorf("x: %w", ErrBadCSR), CodeInvalid, ErrRedeemInvalid},
		{fmt.Errorf("x: %w", ErrMalformed), CodeInvalid, ErrRedeemInvalid},
		{errors.New("disk full"), CodeInternal, ErrRedeemInternal},
	}
	for _, tt := range tests {
		code := ErrorCode(tt.err)
		if code != tt.code {
			t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, code, tt.code)
		}
		msg := ""
		if tt.err != nil {
			msg = tt.err.Error()
		}
		back := ResponseError(&RedeemResponse{Code: code, Message: msg})
		if !errors.Is(back, tt.back) || (tt.back == nil) != (back == nil) {
			t.Errorf("ResponseError(%q) = %v, want %v", code, back, tt.back)
		}
		// The redeemer's error names the problem and what to do.
		if tt.back != nil && !strings.Contains(back.Error(), tt.back.Error()) {
			t.Errorf("ResponseError(%q) text %q lacks %q", code, back, tt.back)
		}
		// Round trip again: the redeemer's error maps to the same code.
		if again := ErrorCode(back); again != code {
			t.Errorf("ErrorCode(ResponseError(%q)) = %q", code, again)
		}
	}
	if err := ResponseError(&RedeemResponse{Code: "from-the-future"}); !errors.Is(err, ErrRedeemInternal) {
		t.Errorf("unknown code: %v", err)
	}
	for _, e := range []error{ErrTokenExpired, ErrTokenUsedUp, ErrTokenUnknown, ErrTokenAlreadyRedeemed, ErrTokenBadSecret} {
		if !strings.Contains(e.Error(), "weft token issue") {
			t.Errorf("%q does not say what to do", e)
		}
	}
}

// Fuzz targets: any input must either fail cleanly or yield a message that
// passes validation and survives a write/read round trip unchanged.

func FuzzReadRequest(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteMessage(&buf, goodRequest())
	f.Add(buf.Bytes())
	f.Add(frame(`{"tokenID":"a","secret":"b","siteID":"` + siteid.ID{1}.String() + `","siteName":"n","csr":"AA=="}`))
	f.Add(frame(`{}`))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := ReadRequest(bytes.NewReader(in))
		if err != nil {
			if req != nil {
				t.Fatal("request returned with error")
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted invalid request: %v", err)
		}
		var out bytes.Buffer
		if err := WriteMessage(&out, req); err != nil {
			t.Fatalf("cannot re-encode accepted request: %v", err)
		}
		again, err := ReadRequest(&out)
		if err != nil {
			t.Fatalf("re-encoded request rejected: %v", err)
		}
		if !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip changed request: %+v -> %+v", req, again)
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteMessage(&buf, goodResponse())
	f.Add(buf.Bytes())
	buf.Reset()
	_ = WriteMessage(&buf, &RedeemResponse{Code: CodeUsedUp, Message: ErrTokenUsedUp.Error()})
	f.Add(buf.Bytes())
	f.Add(frame(`{"code":"x"}`))
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, in []byte) {
		resp, err := ReadResponse(bytes.NewReader(in))
		if err != nil {
			if resp != nil {
				t.Fatal("response returned with error")
			}
			return
		}
		if err := resp.Validate(); err != nil {
			t.Fatalf("accepted invalid response: %v", err)
		}
		// Every accepted response maps to success or a usable error.
		if e := ResponseError(resp); (e == nil) != (resp.Code == CodeOK) {
			t.Fatalf("ResponseError(%q) = %v", resp.Code, e)
		}
		var out bytes.Buffer
		if err := WriteMessage(&out, resp); err != nil {
			t.Fatalf("cannot re-encode accepted response: %v", err)
		}
		again, err := ReadResponse(&out)
		if err != nil {
			t.Fatalf("re-encoded response rejected: %v", err)
		}
		if !reflect.DeepEqual(again, resp) {
			t.Fatalf("round trip changed response: %+v -> %+v", resp, again)
		}
	})
}

// A redemption proof is good for its site, request and connection only: a
// token holder cannot get a certificate naming another site.
func TestRedeemProof(t *testing.T) {
	k, err := NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewSiteKey()
	binding := bytes.Repeat([]byte{7}, 32)
	req := goodRequest()
	req.Prove(k, binding)
	if req.SiteID != k.ID() {
		t.Fatal("Prove did not set the site")
	}
	if _, err := req.CheckProof(binding, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(r *RedeemRequest, b *[]byte){
		"another site claimed": func(r *RedeemRequest, b *[]byte) { r.SiteID = other.ID() },
		"another connection":   func(r *RedeemRequest, b *[]byte) { *b = bytes.Repeat([]byte{8}, 32) },
		"another CSR":          func(r *RedeemRequest, b *[]byte) { r.CSR = append(bytes.Clone(r.CSR), 0) },
		"another token":        func(r *RedeemRequest, b *[]byte) { r.TokenID = "ffff" },
		"another key":          func(r *RedeemRequest, b *[]byte) { r.Key = other.Public() },
	} {
		r, b := *req, binding
		change(&r, &b)
		if _, err := r.CheckProof(b, time.Now()); !errors.Is(err, ErrNotProven) {
			t.Errorf("%s: %v, want ErrNotProven", name, err)
		}
	}
}

// An operational key proves the site too, with its certificate, while the
// certificate is valid; it needs its certificate and the right identity.
func TestRedeemProofOperational(t *testing.T) {
	k, _ := NewSiteKey()
	other, _ := NewSiteKey()
	now := time.Now()
	op, err := opkey.New(k.Private(), 1, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	binding := bytes.Repeat([]byte{7}, 32)
	req := goodRequest()
	req.Prove(op, binding)
	if req.SiteID != k.ID() || len(req.Cert) == 0 || req.Validate() != nil {
		t.Fatalf("site %s, cert %d bytes, validate %v", req.SiteID, len(req.Cert), req.Validate())
	}
	if signer, err := req.CheckProof(binding, now); err != nil || !signer.Equal(op.Public()) {
		t.Fatalf("signer %x, %v", signer, err)
	}
	for name, change := range map[string]func(r *RedeemRequest, now *time.Time){
		"expired":              func(r *RedeemRequest, now *time.Time) { *now = now.Add(2 * time.Hour) },
		"certificate dropped":  func(r *RedeemRequest, now *time.Time) { r.Cert = nil },
		"another site claimed": func(r *RedeemRequest, now *time.Time) { r.SiteID, r.Key = other.ID(), other.Public() },
	} {
		r, at := *req, now
		change(&r, &at)
		if _, err := r.CheckProof(binding, at); !errors.Is(err, ErrNotProven) {
			t.Errorf("%s: %v, want ErrNotProven", name, err)
		}
	}
}
