package resource

import (
	"regexp"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of address policy across organisations.
const (
	KindAddressExport = "AddressExport"
	KindAddressImport = "AddressImport"
)

// AddressExport lets the sites of other organisations consume an address
// this site serves (or, for events, a subject pattern it publishes under):
// `weft policy export ADDRESS --to ORG`. They must import it as well.
//
// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
type AddressExport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              AddressRuleSpec `json:"spec"`
}

// AddressImport lets this site's clients and subscribers use an address
// that sites of other organisations serve, if those export it to this
// site's organisation: `weft policy import ADDRESS --from ORG`.
//
// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
type AddressImport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              AddressRuleSpec `json:"spec"`
}

// AddressRuleSpec names an address and organisations: those it is exported
// to, or imported from.
type AddressRuleSpec struct {
	// Address is a service address, or an event subject pattern ('*' one
	// token, '>' the rest).
	Address string `json:"address"`
	// Organisations are IDs as `weft org id` prints them: 1 to 16.
	Organisations []string `json:"organisations"`
}

var (
	ruleAddressRE = regexp.MustCompile(`^[A-Za-z0-9._/*>-]{1,253}$`)
	orgIDRE       = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// maxRuleOrgs is policy.MaxOrgsPerRule; resource imports nothing of weft.
const maxRuleOrgs = 16

func (s *AddressRuleSpec) validate() error {
	if !ruleAddressRE.MatchString(s.Address) {
		return invalid("spec.address", "%q must be letters, digits, '-', '.', '_', '/', '*' and '>', at most 253 characters", s.Address)
	}
	if len(s.Organisations) == 0 || len(s.Organisations) > maxRuleOrgs {
		return invalid("spec.organisations", "%d organisations: name 1 to %d (IDs as `weft org id` prints them)", len(s.Organisations), maxRuleOrgs)
	}
	for _, o := range s.Organisations {
		if !orgIDRE.MatchString(o) || o == "00000000000000000000000000000000" {
			return invalid("spec.organisations", "%q is not an organisation ID (32 lower-case hex digits, as `weft org id` prints them)", o)
		}
	}
	return nil
}

// Default fills defaults and validates e.
func (e *AddressExport) Default() error {
	e.APIVersion, e.Kind = APIVersion, KindAddressExport
	if err := ValidateName(e.Name); err != nil {
		return err
	}
	return e.Spec.validate()
}

// Default fills defaults and validates i.
func (i *AddressImport) Default() error {
	i.APIVersion, i.Kind = APIVersion, KindAddressImport
	if err := ValidateName(i.Name); err != nil {
		return err
	}
	return i.Spec.validate()
}

// AddressExportList is a list of AddressExports.
// +kubebuilder:object:root=true
type AddressExportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AddressExport `json:"items"`
}

// AddressImportList is a list of AddressImports.
// +kubebuilder:object:root=true
type AddressImportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AddressImport `json:"items"`
}
