package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"weft.dev/weft/internal/apiclient"
	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/resource"
)

// ErrUnsupportedKind is returned for an object a backend cannot deliver,
// such as a Kubernetes kind sent to a weft site.
var ErrUnsupportedKind = errors.New("reconcile: kind not supported by this target")

// weftRequestTimeout bounds each admin API call.
const weftRequestTimeout = 30 * time.Second

// weftCollections maps the kinds a weft site's admin API manages to their
// collection paths.
var weftCollections = map[string]string{
	resource.KindListener:  "/v1/listeners",
	resource.KindConnector: "/v1/connectors",
}

func init() { RegisterBackend("weft", newWeftBackend) }

// weftBackend delivers Listeners and Connectors to a weft site's admin API.
type weftBackend struct{ api apiclient.Client }

var _ Backend = (*weftBackend)(nil)

func newWeftBackend(t Target) (Backend, error) {
	u, err := url.Parse(t.WeftAdmin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("weft admin URL of %s: %q is not an http(s) URL", t.Name, t.WeftAdmin)
	}
	return &weftBackend{apiclient.Client{Base: strings.TrimSuffix(t.WeftAdmin, "/"), Token: t.WeftToken, HTTP: &http.Client{Timeout: weftRequestTimeout}}}, nil
}

func (w *weftBackend) do(ctx context.Context, method, path string, body any, out any) error {
	return w.api.JSON(ctx, method, path, body, out)
}

func (w *weftBackend) itemPath(kind, name string) (string, error) {
	coll, ok := weftCollections[kind]
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrUnsupportedKind, kind)
	}
	return coll + "/" + url.PathEscape(name), nil
}

func (w *weftBackend) Apply(ctx context.Context, obj *unstructured.Unstructured) error {
	p, err := w.itemPath(obj.GetKind(), obj.GetName())
	if err != nil {
		return err
	}
	return w.do(ctx, http.MethodPut, p, obj.Object, nil)
}

func (w *weftBackend) Delete(ctx context.Context, ref Ref) error {
	p, err := w.itemPath(ref.Kind, ref.Name)
	if err != nil {
		return err
	}
	err = w.do(ctx, http.MethodDelete, p, nil, nil)
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// Managed lists both collections: a site has only these two, so it needs no
// inventory.
func (w *weftBackend) Managed(ctx context.Context, _ []Ref) ([]Ref, error) {
	var refs []Ref
	for kind, coll := range weftCollections {
		// Plain maps, not Unstructured, whose decoder insists on a kind.
		var list apitype.List[map[string]any]
		if err := w.do(ctx, http.MethodGet, coll, nil, &list); err != nil {
			return nil, err
		}
		for _, m := range list.Items {
			it := &unstructured.Unstructured{Object: m}
			if it.GetLabels()[ManagedByLabel] != ManagedByValue {
				continue
			}
			ref := RefOf(it)
			// Items are typed by their collection even if the site omits
			// apiVersion and kind in lists.
			ref.Kind = kind
			if ref.APIVersion == "" {
				ref.APIVersion = resource.APIVersion
			}
			refs = append(refs, ref)
		}
	}
	return refs, nil
}
