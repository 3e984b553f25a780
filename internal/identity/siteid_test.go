package identity

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestSiteIDRoundTrip(t *testing.T) {
	id, err := NewSiteID()
	if err != nil {
		t.Fatal(err)
	}
	if id.IsZero() {
		t.Fatal("NewSiteID returned zero")
	}
	s := id.String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want 32 lowercase hex", s)
	}
	back, err := ParseSiteID(s)
	if err != nil || back != id {
		t.Fatalf("ParseSiteID(%q) = %v, %v", s, back, err)
	}
	if up, err := ParseSiteID(strings.ToUpper(s)); err != nil || up != id {
		t.Fatalf("upper case: %v, %v", up, err)
	}
	b, err := json.Marshal(struct{ ID SiteID }{id})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ID":"` + s + `"}`; string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	var got struct{ ID SiteID }
	if err := json.Unmarshal(b, &got); err != nil || got.ID != id {
		t.Fatalf("JSON round trip: %v, %v", got.ID, err)
	}
	if u := id.URI().String(); u != "weft://site/"+s {
		t.Fatalf("URI %s", u)
	}
}

func TestParseSiteIDRejects(t *testing.T) {
	for _, s := range []string{"", "00", strings.Repeat("0", 31), strings.Repeat("0", 33), strings.Repeat("g", 32), " " + strings.Repeat("0", 31)} {
		if _, err := ParseSiteID(s); !errors.Is(err, ErrBadSiteID) {
			t.Errorf("ParseSiteID(%q) err = %v, want ErrBadSiteID", s, err)
		}
	}
}
