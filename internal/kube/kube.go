// Package kube is a site's Kubernetes mode (`weft site run --kubernetes`): it
// watches the weft resources of one namespace and applies them to the site
// through the same code paths as the admin API, writes their status
// conditions back, keeps the site's identity in a Secret, turns each
// Listener into a Service and resolves a Connector's pod selector to the
// Ready pods.
//
// The custom resources are the truth in this mode: every controller here
// compares the whole set of one kind with what the site has and makes the
// site match (a change made through the admin API is undone at the next
// sync). Watch events only enqueue; one worker per kind syncs, with
// controller-runtime's rate-limited retries.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/siteid"
)

// Site is what Kubernetes mode needs of a running site; *site.Site is one.
type Site interface {
	ID() siteid.ID
	Name() string
	LinkAddresses() []string
	Run(ctx context.Context) error
	Apply(ctx context.Context, obj resource.Object) (name, result string, err error)
	Delete(kind, name string) (bool, error)
	Names(kind string) []string
	IssueToken(ttl time.Duration, uses int) (*resource.AccessToken, error)
	Links() []resource.Link
	DeleteLink(name string) error
}

// Options configure Kubernetes mode.
type Options struct {
	// Kubeconfig is a kubeconfig file; empty means the in-cluster config of
	// the pod's service account.
	Kubeconfig string
	// Namespace whose resources the site applies; empty means the pod's own.
	Namespace string
	// Secret keeps the site's identity, CA and link credentials; default
	// weft-site-state.
	Secret string
	// DataDir is the site's data directory, filled from the Secret.
	DataDir string
	// PodLabels select the site's own pods: each Listener's Service selects
	// them. Default app.kubernetes.io/name=weft-site.
	PodLabels string
	// ListenerHost is where listeners without spec.host listen; default
	// 0.0.0.0, so that their Services reach them.
	ListenerHost string
	Logger       *slog.Logger
	// Config, when set, is used instead of Kubeconfig (tests).
	Config *rest.Config
}

// Mode is a site's Kubernetes mode before and while it runs.
type Mode struct {
	opts      Options
	log       *slog.Logger
	cfg       *rest.Config
	scheme    *runtime.Scheme
	client    client.Client // uncached: for the Secret, before the site starts
	podLabels map[string]string
}

// New connects to the cluster and restores the site's data directory from
// its Secret, so that a rescheduled pod keeps its site ID, CA and links.
// Call it before the site is made, pass Persist to the site, then Run.
func New(ctx context.Context, opts Options) (*Mode, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Secret == "" {
		opts.Secret = "weft-site-state"
	}
	if opts.PodLabels == "" {
		opts.PodLabels = "app.kubernetes.io/name=weft-site"
	}
	if opts.ListenerHost == "" {
		opts.ListenerHost = "0.0.0.0"
	}
	sel, err := labels.ConvertSelectorToLabelsMap(opts.PodLabels)
	if err != nil {
		return nil, fmt.Errorf("--pod-labels %q: %w (give key=value pairs separated by commas)", opts.PodLabels, err)
	}
	m := &Mode{opts: opts, log: opts.Logger.With("kubernetes", true), cfg: opts.Config, podLabels: sel}
	if m.cfg == nil {
		if m.cfg, err = restConfig(opts.Kubeconfig); err != nil {
			return nil, err
		}
	}
	if m.opts.Namespace == "" {
		b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		if err != nil {
			return nil, errors.New("no --namespace given and not running in a pod: pass --namespace")
		}
		m.opts.Namespace = strings.TrimSpace(string(b))
	}
	m.scheme = runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(m.scheme), resource.AddToScheme(m.scheme)); err != nil {
		return nil, err
	}
	if m.client, err = client.New(m.cfg, client.Options{Scheme: m.scheme}); err != nil {
		return nil, err
	}
	if err := m.restore(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: outside a pod pass --kubeconfig", err)
	}
	return cfg, nil
}

// Namespace is the namespace the site watches.
func (m *Mode) Namespace() string { return m.opts.Namespace }

// Run runs the site and its controllers until ctx ends or either fails.
func (m *Mode) Run(ctx context.Context, s Site) error {
	if err := m.Persist(); err != nil {
		return err
	}
	ctrl.SetLogger(logr.FromSlogHandler(m.log.Handler()))
	mgr, err := ctrl.NewManager(m.cfg, ctrl.Options{
		Scheme:                 m.scheme,
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{m.opts.Namespace: {}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	r := &reconciler{m: m, site: s, c: mgr.GetClient(), ns: m.opts.Namespace, log: m.log}
	if err := r.setup(mgr); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- s.Run(ctx) }()
	go func() { errc <- mgr.Start(ctx) }()
	err = <-errc
	cancel()
	return errors.Join(err, <-errc)
}
