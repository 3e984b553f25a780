// Command helm-template renders a Helm chart as `helm template` does, with
// Helm's own Go library, for tests on machines without the helm binary:
//
//	go run . CHART RELEASE NAMESPACE [key=value ...]
//
// It prints the rendered manifests, CRDs of the chart's crds/ first.
package main

import (
	"fmt"
	"os"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/strvals"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "helm-template:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: helm-template CHART RELEASE NAMESPACE [key=value ...]")
	}
	chart, err := loader.Load(args[0])
	if err != nil {
		return err
	}
	vals := map[string]any{}
	for _, kv := range args[3:] {
		if err := strvals.ParseInto(kv, vals); err != nil {
			return fmt.Errorf("%s: %w", kv, err)
		}
	}
	install := action.NewInstall(&action.Configuration{})
	install.DryRun, install.ClientOnly, install.Replace, install.IncludeCRDs = true, true, true, true
	install.ReleaseName, install.Namespace = args[1], args[2]
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.33.4", Major: "1", Minor: "33"}
	rel, err := install.Run(chart, vals)
	if err != nil {
		return err
	}
	fmt.Print(rel.Manifest)
	return nil
}
