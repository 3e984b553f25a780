package envtest

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

//go:embed testdata/dnsendpoint-crd.yaml
var dnsEndpointCRD []byte

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallIstioCRDs installs Istio's CRDs, as shipped in the istio.io/api
// module this repository requires (with their OpenAPI and CEL validation),
// and external-dns' DNSEndpoint CRD, then waits until all are established.
func InstallIstioCRDs(t testing.TB, cfg *rest.Config) {
	t.Helper()
	istio, err := os.ReadFile(filepath.Join(moduleDir(t, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml"))
	if err != nil {
		t.Fatalf("envtest: reading Istio's CRDs: %v", err)
	}
	ApplyCRDs(t, cfg, istio, dnsEndpointCRD)
}

// InstallWeftCRDs installs weft's own CRDs, as generated into
// deploy/kubernetes/crds, and waits until they are established.
func InstallWeftCRDs(t testing.TB, cfg *rest.Config) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(moduleDir(t, "weft.dev/weft"), "deploy", "kubernetes", "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("envtest: no CRDs under deploy/kubernetes/crds (%v): run go generate ./internal/resource", err)
	}
	var docs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	ApplyCRDs(t, cfg, docs...)
}

// ApplyCRDs server-side applies the CustomResourceDefinitions in the YAML
// streams docs and waits until all are established.
func ApplyCRDs(t testing.TB, cfg *rest.Config, docs ...[]byte) {
	t.Helper()
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var names []string
	for _, doc := range docs {
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(doc)))
		for {
			raw, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("envtest: splitting CRD YAML: %v", err)
			}
			obj := &unstructured.Unstructured{}
			if err := utilyaml.Unmarshal(raw, &obj.Object); err != nil {
				t.Fatalf("envtest: decoding CRD: %v", err)
			}
			if obj.GetKind() != "CustomResourceDefinition" {
				continue // comments and empty documents
			}
			body, err := obj.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dc.Resource(crdResource).Patch(ctx, obj.GetName(), types.ApplyPatchType, body,
				metav1.PatchOptions{FieldManager: "weft-envtest", Force: ptr(true)}); err != nil {
				t.Fatalf("envtest: applying CRD %s: %v", obj.GetName(), err)
			}
			names = append(names, obj.GetName())
		}
	}
	for _, name := range names {
		for {
			crd, err := dc.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("envtest: CRD %s: %v", name, err)
			}
			if established(crd) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("envtest: CRD %s not established: %v", name, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// moduleDir returns the directory of a module in the build list, downloading
// it if the module cache lacks it.
func moduleDir(t testing.TB, module string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if dir := strings.TrimSpace(string(out)); err == nil && dir != "" {
		return dir
	}
	out, err = exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		t.Fatalf("envtest: locating module %s: %v", module, err)
	}
	var dl struct{ Dir string }
	if err := utilyaml.Unmarshal(out, &dl); err != nil || dl.Dir == "" {
		t.Fatalf("envtest: locating module %s: %v %s", module, err, out)
	}
	return dl.Dir
}

func ptr[T any](v T) *T { return &v }
