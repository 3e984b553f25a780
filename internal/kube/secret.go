package kube

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"weft.dev/weft/internal/datadir"
)

// maxSecret is the most a Secret holds (etcd's and the API server's limit
// is 1 MiB for the whole object; this leaves room for its metadata).
const maxSecret = 900 << 10

// stateFiles lists the files of the data directory that make the site's
// identity and configuration: every regular top-level file but the lock,
// the addresses a running site writes (*.addr) and temporary files. The
// event store (events.db) is data, not identity, and stays on the pod's
// volume.
func stateFiles(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	total := 0
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || n == datadir.LockFile || strings.HasPrefix(n, ".") ||
			strings.HasSuffix(n, ".addr") || strings.HasPrefix(n, "events.") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		if total += len(b); total > maxSecret {
			return nil, fmt.Errorf("the site's state is larger than a Secret holds (%d bytes); delete links or listeners", total)
		}
		out[n] = b
	}
	return out, nil
}

// restore writes the Secret's files into the data directory. Without a
// Secret the site starts new, or from what the directory already holds.
func (m *Mode) restore(ctx context.Context) error {
	var sec corev1.Secret
	err := m.client.Get(ctx, client.ObjectKey{Namespace: m.opts.Namespace, Name: m.opts.Secret}, &sec)
	switch {
	case apierrors.IsNotFound(err):
		m.log.Info("no state Secret yet: the site starts new", "secret", m.opts.Secret)
		return nil
	case err != nil:
		return fmt.Errorf("reading Secret %s/%s: %w (check the site's RBAC: it needs get on secrets)", m.opts.Namespace, m.opts.Secret, err)
	}
	if err := os.MkdirAll(m.opts.DataDir, 0o700); err != nil {
		return err
	}
	for name, b := range sec.Data {
		if name != filepath.Base(name) || strings.HasPrefix(name, ".") {
			return fmt.Errorf("Secret %s/%s: key %q is not a file name the site writes", m.opts.Namespace, m.opts.Secret, name)
		}
		if err := os.WriteFile(filepath.Join(m.opts.DataDir, name), b, 0o600); err != nil {
			return err
		}
	}
	m.log.Info("site state restored from its Secret", "secret", m.opts.Secret, "files", len(sec.Data))
	return nil
}

// Persist copies the site's state files into its Secret, creating it. The
// site calls it after every change it saves (site.Options.Persist).
func (m *Mode) Persist() error {
	files, err := stateFiles(m.opts.DataDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), persistTimeout)
	defer cancel()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.opts.Namespace, Name: m.opts.Secret,
		Labels: map[string]string{managedByLabel: managedBy}}}
	sec.Data = files
	err = m.client.Update(ctx, sec)
	if apierrors.IsNotFound(err) {
		err = m.client.Create(ctx, sec)
	}
	if err != nil {
		return fmt.Errorf("saving the site's state in Secret %s/%s: %w", m.opts.Namespace, m.opts.Secret, err)
	}
	return nil
}
