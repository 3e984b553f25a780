package service

import (
	"slices"
	"testing"
)

// hidingNet is a Network whose address policy hides sites, and nothing
// else: policySkips asks it nothing more.
type hidingNet struct {
	Network
	hidden map[string][]string
}

func (n hidingNet) PolicyHidden(address string) []string { return n.hidden[address] }

// TestPolicySkips: the sites the address policy hides for an address are
// skipped for "policy", after the balancer's own skips and within
// maxSkips; a Network that hides nothing adds none.
func TestPolicySkips(t *testing.T) {
	net := hidingNet{hidden: map[string][]string{"web": {"x", "y"}}}
	if got := policySkips(net, "web", []string{"b:ejected"}); !slices.Equal(got, []string{"b:ejected", "x:policy", "y:policy"}) {
		t.Errorf("skips %v", got)
	}
	if got := policySkips(net, "other", nil); got != nil {
		t.Errorf("skips for an address nothing hides: %v", got)
	}
	full := make([]string, maxSkips)
	if got := policySkips(net, "web", full); len(got) != maxSkips {
		t.Errorf("%d skips, want at most %d", len(got), maxSkips)
	}
	if got := policySkips(hidingNet{}, "web", nil); got != nil {
		t.Errorf("skips without a policy: %v", got)
	}
}
