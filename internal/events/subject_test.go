package events

import (
	"strings"
	"testing"
)

// TestCovers: a permission pattern covers a subscription pattern exactly when
// every subject the subscription can match is one the permission matches.
func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		have, want string
		ok         bool
	}{
		{"orders", "orders", true},
		{"orders", "payments", false},
		{"orders", "orders.created", false},
		{"orders.created", "orders", false},
		{"orders.*", "orders.created", true},
		{"orders.*", "orders.*", true},
		{"orders.*", "orders.>", false},
		{"orders.*", "orders.created.eu", false},
		{"orders.created", "orders.*", false},
		{"orders.>", "orders.created", true},
		{"orders.>", "orders.created.eu", true},
		{"orders.>", "orders.*", true},
		{"orders.>", "orders.*.eu", true},
		{"orders.>", "orders.>", true},
		{"orders.>", "orders", false}, // '>' needs one token at least
		{"orders.>", ">", false},
		{"orders.>", "*.created", false},
		{">", ">", true},
		{">", "*", true},
		{">", "a.b.c", true},
		{"*", ">", false},
		{"*", "a.b", false},
		{"*.>", ">", false}, // ">" matches one-token subjects that "*.>" does not
		{"*.>", "*.*", true},
		{"*.created", "orders.created", true},
		{"*.created", "*.created", true},
		{"*.created", "orders.*", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.*.d", false},
	} {
		if got := Covers(tc.have, tc.want); got != tc.ok {
			t.Errorf("Covers(%q, %q) = %v, want %v", tc.have, tc.want, got, tc.ok)
		}
	}
}

// instances are subjects that pattern p matches and that, between them,
// reach every way p can differ from another pattern: '*' and '>' become a
// token no valid pattern holds ('#'), and '>' once one such token and once
// more tokens than any pattern of n tokens has.
func instances(p string, n int) []string {
	short := strings.ReplaceAll(strings.ReplaceAll(p, "*", "#"), ">", "#")
	long := strings.ReplaceAll(strings.ReplaceAll(p, "*", "#"), ">", strings.Repeat("#.", n)+"#")
	return []string{short, long}
}

// FuzzCovers checks Covers against its definition on instances: when it
// says yes, every instance of want matches have; when it says no, one of
// them does not. With a subject as want it is Match.
func FuzzCovers(f *testing.F) {
	for _, s := range [][2]string{{"orders.>", "orders.*"}, {"*.>", ">"}, {"a.*.c", "a.b.c"}, {">", "x"}, {"*", "a.b"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, have, want string) {
		if ValidatePattern(have) != nil || ValidatePattern(want) != nil {
			return
		}
		if !Covers(want, want) {
			t.Fatalf("%q does not cover itself", want)
		}
		got := Covers(have, want)
		if ValidateSubject(want) == nil && got != Match(have, want) {
			t.Fatalf("Covers(%q, %q) = %v but Match says %v", have, want, got, !got)
		}
		all := true
		for _, s := range instances(want, strings.Count(have, ".")+1) {
			if !Match(want, s) {
				t.Fatalf("instance %q of %q does not match it", s, want)
			}
			all = all && Match(have, s)
		}
		if got != all {
			t.Fatalf("Covers(%q, %q) = %v, but its instances say %v", have, want, got, all)
		}
	})
}
