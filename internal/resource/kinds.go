// +kubebuilder:object:generate=true
// +groupName=weft.dev
// +versionName=v1alpha1

package resource

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is APIVersion as Kubernetes' client libraries spell it.
var GroupVersion = schema.GroupVersion{Group: "weft.dev", Version: "v1alpha1"}

// Object is every weft resource: a Kubernetes object that fills in its own
// defaults and validates itself.
//
// +kubebuilder:object:generate=false
type Object interface {
	runtime.Object
	metav1.Object
	Default() error
}

var (
	schemeBuilder = runtime.NewSchemeBuilder(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion,
			&Site{}, &SiteList{}, &Link{}, &LinkList{}, &AccessGrant{}, &AccessGrantList{},
			&AccessToken{}, &AccessTokenList{}, &Listener{}, &ListenerList{}, &Connector{}, &ConnectorList{},
			&Topic{}, &TopicList{}, &Queue{}, &QueueList{}, &Subscription{}, &SubscriptionList{},
			&Bridge{}, &BridgeList{}, &AddressExport{}, &AddressExportList{}, &AddressImport{}, &AddressImportList{},
			&Network{}, &NetworkList{}, &NetworkAttachment{}, &NetworkAttachmentList{})
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})
	// AddToScheme registers every weft kind with a Kubernetes scheme.
	AddToScheme = schemeBuilder.AddToScheme
)

// Status is what a site in Kubernetes mode reports on a resource it applied.
type Status struct {
	// ObservedGeneration is the metadata.generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, with a reason and a message saying what to do.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ConditionReady is the one condition type every weft resource reports.
const ConditionReady = "Ready"

// Site describes the site that runs in a namespace. The site writes its
// status (ID, link addresses) onto the Site of its name; the spec is
// reserved for settings that are flags today.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.status.id`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type Site struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	// +optional
	Spec SiteSpec `json:"spec,omitzero"`
	// +optional
	Status SiteStatus `json:"status,omitzero"`
}

// SiteSpec is empty for now: a site is configured by its command line.
type SiteSpec struct{}

// SiteStatus is the running site's identity.
type SiteStatus struct {
	Status `json:",inline"`
	// ID is the site's 128-bit ID, derived from its key.
	// +optional
	ID string `json:"id,omitempty"`
	// LinkAddresses are what tokens of this site point other sites at.
	// +optional
	LinkAddresses []string `json:"linkAddresses,omitempty"`
}

// Default validates s.
func (s *Site) Default() error {
	s.APIVersion, s.Kind = APIVersion, KindSite
	return ValidateName(s.Name)
}

// AccessGrant asks the site to issue an access token (Skupper's AccessGrant):
// the token appears in status.token, to be applied as an AccessToken at the
// site that should link here.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Uses",type=integer,JSONPath=`.spec.uses`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.status.token.expires`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type AccessGrant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	// +optional
	Spec AccessGrantSpec `json:"spec,omitzero"`
	// +optional
	Status AccessGrantStatus `json:"status,omitzero"`
}

// AccessGrantSpec says how long the token lasts and how often it may be
// redeemed.
type AccessGrantSpec struct {
	// Uses is how many sites may redeem the token; default 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Uses int `json:"uses,omitempty"`
	// Expires is how long the token is valid after it is issued, a Go
	// duration; default 15m.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	Expires string `json:"expires,omitempty"`
}

// AccessGrantStatus carries the issued token.
type AccessGrantStatus struct {
	Status `json:",inline"`
	// Token is the spec of the AccessToken to apply at the other site.
	// +optional
	Token *AccessTokenSpec `json:"token,omitempty"`
}

// DefaultGrantExpiry is AccessGrantSpec.Expires when unset.
const DefaultGrantExpiry = 15 * time.Minute

// Default fills defaults and validates g.
func (g *AccessGrant) Default() error {
	g.APIVersion, g.Kind = APIVersion, KindAccessGrant
	if err := ValidateName(g.Name); err != nil {
		return err
	}
	if g.Spec.Uses == 0 {
		g.Spec.Uses = 1
	}
	if g.Spec.Uses < 0 || g.Spec.Uses > 100 {
		return invalid("spec.uses", "%d is not between 1 and 100", g.Spec.Uses)
	}
	return validateDuration("spec.expires", &g.Spec.Expires, DefaultGrantExpiry.String())
}

// Lists, as the Kubernetes API returns them.

// SiteList is a list of Sites.
// +kubebuilder:object:root=true
type SiteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Site `json:"items"`
}

// LinkList is a list of Links.
// +kubebuilder:object:root=true
type LinkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Link `json:"items"`
}

// AccessGrantList is a list of AccessGrants.
// +kubebuilder:object:root=true
type AccessGrantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessGrant `json:"items"`
}

// AccessTokenList is a list of AccessTokens.
// +kubebuilder:object:root=true
type AccessTokenList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessToken `json:"items"`
}

// ListenerList is a list of Listeners.
// +kubebuilder:object:root=true
type ListenerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Listener `json:"items"`
}

// ConnectorList is a list of Connectors.
// +kubebuilder:object:root=true
type ConnectorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Connector `json:"items"`
}

// TopicList is a list of Topics.
// +kubebuilder:object:root=true
type TopicList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Topic `json:"items"`
}

// QueueList is a list of Queues.
// +kubebuilder:object:root=true
type QueueList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Queue `json:"items"`
}

// SubscriptionList is a list of Subscriptions.
// +kubebuilder:object:root=true
type SubscriptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Subscription `json:"items"`
}
