package apitype

import "net/netip"

// NetworkAttach is the body of POST /v1/networks/{name}/attachments: a TUN
// device of the network in namespace Netns (vL3, internal/vl3).
type NetworkAttach struct {
	Netns string `json:"netns"`
	// Name is the attachment's DNS label; the namespace's name if empty.
	Name string `json:"name,omitempty"`
	// IP is the address to take; the next free one of the site's prefix
	// if zero.
	IP  netip.Addr `json:"ip,omitzero"`
	DNS bool       `json:"dns,omitempty"`
	// MTU of the network's devices at this site; 0 keeps it.
	MTU int `json:"mtu,omitempty"`
}
