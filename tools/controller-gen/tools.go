//go:build tools

// Package tools pins controller-gen, which generates the CRDs under
// deploy/kubernetes/crds and internal/resource's deep-copy methods from the
// Go types there: `go generate ./internal/resource` runs it.
package tools

import _ "sigs.k8s.io/controller-tools/cmd/controller-gen"
