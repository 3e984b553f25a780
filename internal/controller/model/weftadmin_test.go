package model_test

import (
	"errors"
	"testing"

	"weft.dev/weft/internal/controller/model"
)

// A Cluster's weft admin may be written as a site's admin.addr holds it,
// host:port; it is stored as the http URL the site serves.
func TestClusterWeftAdminHostPort(t *testing.T) {
	var c model.Cluster
	if err := model.DecodeObject([]byte(`{"metadata":{"name":"e"},"spec":{"weft":{"admin":"127.0.0.1:7070","token":"t"}}}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Weft.Admin != "http://127.0.0.1:7070" {
		t.Errorf("admin %q, want http://127.0.0.1:7070", c.Spec.Weft.Admin)
	}
	err := model.DecodeObject([]byte(`{"metadata":{"name":"e"},"spec":{"weft":{"admin":"nowhere"}}}`), &c)
	var fe *model.FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.weft.admin" {
		t.Errorf("admin nowhere: %v", err)
	}
}

// A Cluster's site may instead run in Kubernetes mode in a namespace,
// reached through the cluster's kubeconfig.
func TestClusterWeftNamespace(t *testing.T) {
	var c model.Cluster
	if err := model.DecodeObject([]byte(`{"metadata":{"name":"e"},"spec":{"kubeconfig":"k","weft":{"namespace":"shop"}}}`), &c); err != nil {
		t.Fatal(err)
	}
	for body, field := range map[string]string{
		`{"metadata":{"name":"e"},"spec":{"weft":{"namespace":"shop"}}}`:                                        "spec.weft.namespace",
		`{"metadata":{"name":"e"},"spec":{"kubeconfig":"k","weft":{"namespace":"shop","admin":"127.0.0.1:1"}}}`: "spec.weft",
		`{"metadata":{"name":"e"},"spec":{"kubeconfig":"k","weft":{"namespace":"Shop!"}}}`:                      "spec.weft.namespace",
	} {
		var c model.Cluster
		err := model.DecodeObject([]byte(body), &c)
		var fe *model.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v, want an error of %s", body, err, field)
		}
	}
}
