package vl3

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"weft.dev/weft/internal/datadir"
)

// stateFile keeps a site's networks, prefixes and attachments in its data
// directory, so that a restarted site owns the same prefix and hands out
// no address twice.
const stateFile = "vl3.json"

// DefaultMTU is the MTU of an attachment's device. Packets ride a reliable
// link stream, so the links' own MTU does not bound it; it is kept below
// 1500 so that a workload's packets fit a physical path if it is later
// carried by datagrams.
const DefaultMTU = 1400

// Network is a vL3 network as a site holds it.
type Network struct {
	Name string       `json:"name"`
	CIDR netip.Prefix `json:"cidr"`
	MTU  int          `json:"mtu"`
	// Prefix is the part of CIDR this site owns: claimed at the first
	// attachment, kept for good.
	Prefix      netip.Prefix `json:"prefix,omitzero"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Attachment is a TUN device of a network in a network namespace.
type Attachment struct {
	// Name is the attachment's DNS label (<name>.<network>.weft); by
	// default the namespace's name.
	Name  string     `json:"name"`
	Netns string     `json:"netns"`
	IP    netip.Addr `json:"ip"`
	DNS   bool       `json:"dns,omitempty"`
}

func (n *Network) pool() Pool {
	p := Pool{Prefix: n.Prefix}
	for _, a := range n.Attachments {
		p.Used = append(p.Used, a.IP)
	}
	return p
}

func (n *Network) attachment(netnsName string) int {
	return slices.IndexFunc(n.Attachments, func(a Attachment) bool { return a.Netns == netnsName })
}

// validate checks a network read from the state file or given by a user.
func (n *Network) validate() error {
	if err := CheckName("network", n.Name); err != nil {
		return err
	}
	if err := CheckCIDR(n.CIDR); err != nil {
		return err
	}
	if n.MTU < 576 || n.MTU > 9000 {
		return fmt.Errorf("%w: MTU %d: use 576 to 9000", ErrInvalid, n.MTU)
	}
	return nil
}

type stateDoc struct {
	Networks []Network `json:"networks"`
}

func loadState(dir string) ([]Network, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var d stateDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile, err)
	}
	for i := range d.Networks {
		if err := d.Networks[i].validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", stateFile, err)
		}
	}
	return d.Networks, nil
}

// saveState writes the state file whole, through a rename, so that a crash
// leaves the old state or the new one.
func saveState(dir string, nets []Network) error {
	b, err := json.MarshalIndent(stateDoc{Networks: nets}, "", "  ")
	if err != nil {
		return err
	}
	return datadir.WriteFile(filepath.Join(dir, stateFile), b, 0o600)
}
