package resource

import (
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of vL3 (internal/vl3).
const (
	KindNetwork           = "Network"
	KindNetworkAttachment = "NetworkAttachment"
)

// Network is a vL3 network: a flat IPv4 network across every site that
// attaches to it (`weft network create NAME --cidr CIDR`).
//
// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=`.spec.cidr`
type Network struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              NetworkSpec `json:"spec"`
}

// NetworkSpec is a Network's CIDR and devices' MTU.
type NetworkSpec struct {
	// CIDR is an IPv4 prefix, /8 to /24, such as 100.100.0.0/16.
	CIDR string `json:"cidr"`
	// MTU of the network's devices at this site; 1400 if 0.
	// +optional
	MTU int `json:"mtu,omitempty"`
}

// NetworkAttachment is a network namespace's device on a Network
// (`weft network attach NETWORK --netns NS`); its name is its DNS label.
//
// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Network",type=string,JSONPath=`.spec.network`
// +kubebuilder:printcolumn:name="Netns",type=string,JSONPath=`.spec.netns`
type NetworkAttachment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              NetworkAttachmentSpec `json:"spec"`
}

// NetworkAttachmentSpec says which namespace joins which network.
type NetworkAttachmentSpec struct {
	Network string `json:"network"`
	Netns   string `json:"netns"`
	// IP is the address to take in the site's prefix; the next free one
	// if empty.
	// +optional
	IP string `json:"ip,omitempty"`
	// DNS makes <name>.<network>.weft names resolve in the namespace.
	// +optional
	DNS bool `json:"dns,omitempty"`
}

// Default fills defaults and checks n; the site checks the CIDR's rules.
func (n *Network) Default() error {
	n.APIVersion, n.Kind = APIVersion, KindNetwork
	if err := ValidateName(n.Name); err != nil {
		return err
	}
	if p, err := netip.ParsePrefix(n.Spec.CIDR); err != nil || !p.Addr().Is4() {
		return invalid("spec.cidr", "%q is not an IPv4 prefix such as 100.100.0.0/16", n.Spec.CIDR)
	}
	if n.Spec.MTU == 0 {
		n.Spec.MTU = 1400
	}
	return nil
}

// Default fills defaults and checks a.
func (a *NetworkAttachment) Default() error {
	a.APIVersion, a.Kind = APIVersion, KindNetworkAttachment
	if err := ValidateName(a.Name); err != nil {
		return err
	}
	switch {
	case a.Spec.Network == "":
		return invalid("spec.network", "name the network to attach to")
	case a.Spec.Netns == "":
		return invalid("spec.netns", "name the network namespace (ip netns) to attach")
	}
	if a.Spec.IP != "" {
		if ip, err := netip.ParseAddr(a.Spec.IP); err != nil || !ip.Is4() {
			return invalid("spec.ip", "%q is not an IPv4 address", a.Spec.IP)
		}
	}
	return nil
}

// NetworkList is a list of Networks.
// +kubebuilder:object:root=true
type NetworkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Network `json:"items"`
}

// NetworkAttachmentList is a list of NetworkAttachments.
// +kubebuilder:object:root=true
type NetworkAttachmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkAttachment `json:"items"`
}
