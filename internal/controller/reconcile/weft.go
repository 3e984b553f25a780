package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
type weftBackend struct {
	base  string // admin URL without a trailing slash
	token string
	hc    *http.Client
}

var _ Backend = (*weftBackend)(nil)

func newWeftBackend(t Target) (Backend, error) {
	u, err := url.Parse(t.WeftAdmin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("weft admin URL of %s: %q is not an http(s) URL", t.Name, t.WeftAdmin)
	}
	return &weftBackend{base: strings.TrimSuffix(t.WeftAdmin, "/"), token: t.WeftToken, hc: &http.Client{Timeout: weftRequestTimeout}}, nil
}

// weftError is a non-success answer of the admin API.
type weftError struct {
	Method, Path string
	Status       int
	Body         string // the API's error message, or a prefix of the body
}

func (e *weftError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Body)
}

func (w *weftBackend) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+w.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &weftError{Method: method, Path: path, Status: resp.StatusCode, Body: apiMessage(b)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
		}
	}
	return nil
}

// apiMessage extracts the message of the admin API's error shape
// {"error":{"code":..,"message":..}}, or returns the start of the body.
func apiMessage(b []byte) string {
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return e.Error.Code + ": " + e.Error.Message
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.TrimSpace(string(b))
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
	var we *weftError
	if errors.As(err, &we) && we.Status == http.StatusNotFound {
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
		var list struct {
			Items []map[string]any `json:"items"`
		}
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
