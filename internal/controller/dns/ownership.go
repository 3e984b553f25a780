package dns

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadOwnership is returned by ParseOwnership for text that is not a weft
// ownership record. Such TXT records are ignored: the record sets they sit
// beside count as not owned.
var ErrBadOwnership = errors.New("dns: not a weft ownership record")

const heritage = "weft"

// Ownership is the content of an ownership TXT record.
type Ownership struct {
	Owner    string
	Resource Resource
}

func (o Ownership) String() string {
	return "heritage=" + heritage + ",weft/owner=" + o.Owner + ",weft/resource=" + o.Resource.String()
}

// ParseOwnership decodes an ownership record's text. The text comes from the
// zone, which anyone holding an update key can write, so it is untrusted:
// anything but exactly the three known fields is rejected.
func ParseOwnership(txt string) (Ownership, error) {
	var o Ownership
	var seen [3]bool
	fields := strings.Split(txt, ",")
	if len(fields) != 3 {
		return o, fmt.Errorf("%w: %d fields", ErrBadOwnership, len(fields))
	}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" || strings.ContainsAny(v, "=\"\\ ") {
			return o, fmt.Errorf("%w: field %q", ErrBadOwnership, f)
		}
		switch {
		case k == "heritage" && !seen[0]:
			if v != heritage {
				return o, fmt.Errorf("%w: heritage %q", ErrBadOwnership, v)
			}
			seen[0] = true
		case k == "weft/owner" && !seen[1]:
			o.Owner, seen[1] = v, true
		case k == "weft/resource" && !seen[2]:
			ns, name, ok := strings.Cut(v, "/")
			if !ok || name == "" || strings.Contains(name, "/") {
				return o, fmt.Errorf("%w: resource %q", ErrBadOwnership, v)
			}
			o.Resource, seen[2] = Resource{Namespace: ns, Name: name}, true
		default:
			return o, fmt.Errorf("%w: field %q", ErrBadOwnership, k)
		}
	}
	return o, nil
}
