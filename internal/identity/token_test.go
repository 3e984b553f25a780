package identity

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"weft.dev/weft/internal/siteid"
)

func TestTokenRedeem(t *testing.T) {
	a, b, c := siteid.ID{1}, siteid.ID{2}, siteid.ID{3}
	type step struct {
		at       time.Duration // after issue
		secret   string        // "" means the issued secret
		id       string        // "" means the issued ID
		redeemer siteid.ID
		want     error
	}
	tests := []struct {
		name  string
		ttl   time.Duration
		uses  int
		steps []step
	}{
		{"ok", time.Minute, 1, []step{{at: 0, redeemer: a}}},
		{"ok just before expiry", time.Minute, 1, []step{{at: time.Minute - time.Nanosecond, redeemer: a}}},
		{"expired at expiry", time.Minute, 1, []step{{at: time.Minute, redeemer: a, want: ErrTokenExpired}}},
		{"expired long after, before purge", time.Minute, 1, []step{{at: ExpiredRetention, redeemer: a, want: ErrTokenExpired}}},
		{"purged long after expiry", time.Minute, 1, []step{{at: ExpiredRetention + 2*time.Minute, redeemer: a, want: ErrTokenUnknown}}},
		{"unknown", time.Minute, 1, []step{{id: "0123456789abcdef", redeemer: a, want: ErrTokenUnknown}}},
		{"bad secret", time.Minute, 1, []step{
			{secret: "AAAA", redeemer: a, want: ErrTokenBadSecret},
			{redeemer: a}, // a wrong guess does not spend the token
		}},
		{"replay by same site", time.Minute, 1, []step{
			{redeemer: a},
			{at: time.Second, redeemer: a, want: ErrTokenAlreadyRedeemed},
		}},
		{"replay after expiry is still a replay", time.Minute, 1, []step{
			{redeemer: a},
			{at: 2 * time.Minute, redeemer: a, want: ErrTokenAlreadyRedeemed},
		}},
		{"used up by another site", time.Minute, 1, []step{
			{redeemer: a},
			{redeemer: b, want: ErrTokenUsedUp},
		}},
		{"multi-use", time.Minute, 2, []step{
			{redeemer: a},
			{redeemer: a, want: ErrTokenAlreadyRedeemed},
			{redeemer: b},
			{redeemer: c, want: ErrTokenUsedUp},
			{redeemer: b, want: ErrTokenAlreadyRedeemed},
		}},
		{"bad secret checked before replay", time.Minute, 1, []step{
			{redeemer: a},
			{secret: "nope", redeemer: a, want: ErrTokenBadSecret},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s TokenStore
			id, secret, exp, err := s.Issue(t0, tt.ttl, tt.uses)
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(t0.Add(tt.ttl)) {
				t.Fatalf("expires %v", exp)
			}
			for i, st := range tt.steps {
				sid, ssec := id, secret
				if st.id != "" {
					sid = st.id
				}
				if st.secret != "" {
					ssec = st.secret
				}
				if err := s.Redeem(t0.Add(st.at), sid, ssec, st.redeemer); err != tt.steps[i].want {
					t.Fatalf("step %d: Redeem = %v, want %v", i, err, st.want)
				}
			}
		})
	}
}

func TestTokenIssue(t *testing.T) {
	var s TokenStore
	id1, sec1, _, err := s.Issue(t0, time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	id2, sec2, _, err := s.Issue(t0, time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	if id1 == id2 || sec1 == sec2 {
		t.Fatal("two tokens share an ID or secret")
	}
	if len(sec1) != 43 { // 32 bytes, unpadded base64url
		t.Fatalf("secret %q is not 256 bits", sec1)
	}
	// Secrets of one token do not open another.
	if err := s.Redeem(t0, id1, sec2, siteid.ID{1}); !errors.Is(err, ErrTokenBadSecret) {
		t.Fatalf("cross secret: %v", err)
	}
	for _, bad := range []struct {
		ttl  time.Duration
		uses int
	}{{0, 1}, {-time.Second, 1}, {time.Minute, 0}, {time.Minute, MaxTokenUses + 1}} {
		if _, _, _, err := s.Issue(t0, bad.ttl, bad.uses); err == nil {
			t.Errorf("Issue(ttl %v, uses %d) accepted", bad.ttl, bad.uses)
		}
	}
	if !s.Revoke(id1) || s.Revoke(id1) {
		t.Fatal("Revoke did not report existence")
	}
	if err := s.Redeem(t0, id1, sec1, siteid.ID{1}); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("revoked token: %v", err)
	}
}

func TestTokenPurge(t *testing.T) {
	var s TokenStore
	short, _, _, _ := s.Issue(t0, time.Minute, 1)
	long, _, _, _ := s.Issue(t0, 48*time.Hour, 1)
	if n := s.Purge(t0.Add(time.Minute + ExpiredRetention)); n != 0 {
		t.Fatalf("purged %d at the retention edge", n)
	}
	later := t0.Add(2*time.Minute + ExpiredRetention)
	if n := s.Purgeable(later); n != 1 || len(s.Tokens()) != 2 {
		t.Fatalf("Purgeable = %d with %d tokens left, want 1 and nothing dropped", n, len(s.Tokens()))
	}
	if n := s.Purge(later); n != 1 {
		t.Fatalf("purged %d, want 1", n)
	}
	got := s.Tokens()
	if len(got) != 1 || got[0].ID != long {
		t.Fatalf("left %+v, want only %s (not %s)", got, long, short)
	}
}

func TestTokenStorePersistence(t *testing.T) {
	var s TokenStore
	id, secret, _, err := s.Issue(t0, time.Hour, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Redeem(t0, id, secret, siteid.ID{1}); err != nil {
		t.Fatal(err)
	}
	id2, secret2, _, _ := s.Issue(t0, 2*time.Hour, 1)

	b, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{secret, secret2} {
		if strings.Contains(string(b), sec) {
			t.Fatalf("persisted form holds a plaintext secret: %s", b)
		}
	}
	var back TokenStore
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, err := json.Marshal(&back)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(b2) {
		t.Fatalf("round trip differs:\n%s\n%s", b, b2)
	}
	// The restored store remembers redemptions and still checks secrets.
	if err := back.Redeem(t0, id, secret, siteid.ID{1}); !errors.Is(err, ErrTokenAlreadyRedeemed) {
		t.Fatalf("replay after restore: %v", err)
	}
	if err := back.Redeem(t0, id, secret, siteid.ID{2}); err != nil {
		t.Fatalf("second use after restore: %v", err)
	}
	if err := back.Redeem(t0, id2, "wrong", siteid.ID{2}); !errors.Is(err, ErrTokenBadSecret) {
		t.Fatalf("bad secret after restore: %v", err)
	}
	if err := back.Redeem(t0.Add(3*time.Hour), id2, secret2, siteid.ID{2}); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired after restore: %v", err)
	}

	for name, in := range map[string]string{
		"version":   `{"version":2,"tokens":[]}`,
		"short sha": `{"version":1,"tokens":[{"id":"a","secretSHA256":"00","expires":"2030-01-01T00:00:00Z","uses":1}]}`,
		"long sha":  `{"version":1,"tokens":[{"id":"a","secretSHA256":"` + strings.Repeat("0", 66) + `","expires":"2030-01-01T00:00:00Z","uses":1}]}`,
		"overspent": `{"version":1,"tokens":[{"id":"a","secretSHA256":"` + strings.Repeat("0", 64) + `","expires":"2030-01-01T00:00:00Z","uses":1,"redeemedBy":["` + siteid.ID{1}.String() + `","` + siteid.ID{2}.String() + `"]}]}`,
		"duplicate": `{"version":1,"tokens":[{"id":"a","secretSHA256":"` + strings.Repeat("0", 64) + `","uses":1},{"id":"a","secretSHA256":"` + strings.Repeat("0", 64) + `","uses":1}]}`,
	} {
		if err := json.Unmarshal([]byte(in), &back); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A failed load leaves the store as it was.
	if len(back.Tokens()) != 2 {
		t.Fatalf("failed loads changed the store: %+v", back.Tokens())
	}
}

// Concurrent redeemers of a multi-use token: exactly uses of them win.
func TestTokenConcurrentRedeem(t *testing.T) {
	var s TokenStore
	id, secret, _, err := s.Issue(t0, time.Minute, 3)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		ok, up int
	)
	for i := range 10 {
		wg.Go(func() {
			err := s.Redeem(t0, id, secret, siteid.ID{byte(i + 1)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrTokenUsedUp):
				up++
			default:
				t.Errorf("unexpected %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 3 || up != 7 {
		t.Fatalf("%d redeemed, %d used up; want 3 and 7", ok, up)
	}
}
