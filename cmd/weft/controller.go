package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/apiclient"
	"weft.dev/weft/internal/controller"
	"weft.dev/weft/internal/controller/api"
	"weft.dev/weft/internal/controller/reconcile"
)

func newControllerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "controller", Short: "Run the intent controller"}
	var listen, db string
	var maxBackoff time.Duration
	run := &cobra.Command{
		Use:   "run --data DIR [--listen HOST:PORT] [--db sqlite://PATH|postgres://...]",
		Short: "Serve the intent API and sync every cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.data == "" {
				return errors.New("controller run needs --data DIR")
			}
			return controller.Run(cmd.Context(), controller.Options{
				Data: g.data, Listen: listen, DB: db,
				Engine: reconcile.Options{MaxBackoff: maxBackoff},
				// With --listen HOST:0 the file is the only way to learn the port.
				Ready: func(addr string) {
					if err := os.WriteFile(filepath.Join(g.data, controller.AddrFile), []byte(addr+"\n"), 0o644); err != nil {
						slog.Warn("writing the API address", "err", err)
					}
				},
			})
		},
	}
	run.Flags().StringVar(&listen, "listen", "127.0.0.1:7480", "API address (port 0: any free port, written to DATA/api.addr)")
	run.Flags().DurationVar(&maxBackoff, "max-backoff", 0, "cap of the retry delay for an unreachable target (default 5m)")
	run.Flags().StringVar(&db, "db", "", "database URL (default sqlite://DATA/controller.db)")
	cmd.AddCommand(run)
	return cmd
}

// controllerClient talks to the controller at --controller with the token from
// WEFT_CONTROLLER_TOKEN or DATA/admin.token.
type controllerClient struct{ api apiclient.Client }

func newControllerClient() (*controllerClient, error) {
	if g.controller == "" {
		return nil, errors.New("no controller: set --controller URL or WEFT_CONTROLLER")
	}
	tok := os.Getenv("WEFT_CONTROLLER_TOKEN")
	if tok == "" && g.data != "" {
		b, err := os.ReadFile(filepath.Join(g.data, controller.AdminTokenFile))
		if err != nil {
			return nil, fmt.Errorf("reading the admin token: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return nil, errors.New("no controller token: set WEFT_CONTROLLER_TOKEN or --data DIR holding admin.token")
	}
	return &controllerClient{apiclient.Client{Base: strings.TrimSuffix(g.controller, "/"), Token: tok}}, nil
}

func (c *controllerClient) do(ctx context.Context, method, path string, in, out any) error {
	return c.api.JSON(ctx, method, path, in, out)
}

// groupFlags locate a traffic group.
type groupFlags struct{ project, app, version, group string }

func (f *groupFlags) add(cmd *cobra.Command, needGroup bool) {
	cmd.Flags().StringVar(&f.project, "project", "", "project")
	cmd.Flags().StringVar(&f.app, "app", "", "app")
	cmd.Flags().StringVar(&f.version, "version", "", "app version")
	cmd.Flags().StringVar(&f.group, "group", "", "traffic group")
	if needGroup {
		for _, n := range []string{"project", "app", "version", "group"} {
			cmd.MarkFlagRequired(n)
		}
	}
}

func (f *groupFlags) groupPath() string {
	return "/v2/projects/" + f.project + "/apps/" + f.app + "/" + f.version + "/traffic-groups/" + f.group
}

// collectionFor returns where a document of kind is created.
func (f *groupFlags) collectionFor(kind string) (string, error) {
	need := func(names ...string) error {
		vals := map[string]string{"project": f.project, "app": f.app, "version": f.version, "group": f.group}
		for _, n := range names {
			if vals[n] == "" {
				return fmt.Errorf("a %s document needs --%s", kind, n)
			}
		}
		return nil
	}
	switch kind {
	case "Project":
		return "/v2/projects", nil
	case "Cluster":
		return "/v2/projects/" + f.project + "/clusters", need("project")
	case "App":
		return "/v2/projects/" + f.project + "/apps", need("project")
	case "TrafficGroup":
		return "/v2/projects/" + f.project + "/apps/" + f.app + "/" + f.version + "/traffic-groups", need("project", "app", "version")
	case "Intent":
		return f.groupPath() + "/intents", need("project", "app", "version", "group")
	}
	return "", fmt.Errorf("kind %q is not Project, Cluster, App, TrafficGroup or Intent", kind)
}

func newIntentCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "intent", Short: "Manage the controller's projects, clusters, apps and intents"}
	var file string
	var f groupFlags
	apply := &cobra.Command{
		Use:   "apply -f FILE.yaml",
		Short: "Create or update every document of FILE (kinds Project, Cluster, App, TrafficGroup, Intent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newControllerClient()
			if err != nil {
				return err
			}
			var data []byte
			if file == "-" {
				data, err = io.ReadAll(os.Stdin)
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			return applyDocuments(cmd.Context(), c, &f, data, cmd.OutOrStdout())
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "YAML or JSON file, - for stdin")
	apply.MarkFlagRequired("file")
	f.add(apply, false)
	cmd.AddCommand(apply)
	return cmd
}

// applyDocuments creates each document, or replaces it if it exists.
func applyDocuments(ctx context.Context, c *controllerClient, f *groupFlags, data []byte, w io.Writer) error {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if len(obj) == 0 {
			continue
		}
		kind, _ := obj["kind"].(string)
		delete(obj, "kind")
		delete(obj, "apiVersion")
		coll, err := f.collectionFor(kind)
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		meta, _ := obj["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		err = c.do(ctx, http.MethodPost, coll, obj, nil)
		verb := "created"
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Code == "AlreadyExists" {
			item := coll + "/" + name
			if kind == "App" {
				spec, _ := obj["spec"].(map[string]any)
				v, _ := spec["version"].(string)
				item += "/" + v
			}
			err, verb = c.do(ctx, http.MethodPut, item, obj, nil), "updated"
		}
		if err != nil {
			return fmt.Errorf("document %d (%s %s): %w", i, kind, name, err)
		}
		fmt.Fprintf(w, "%s %s %s\n", strings.ToLower(kind), name, verb)
	}
}

func newPlanCmd() *cobra.Command {
	var f groupFlags
	var format string
	var apply bool
	cmd := &cobra.Command{
		Use:   "plan --project P --app A --version V --group G [--apply]",
		Short: "Show what each cluster would get from a traffic group, as a diff against what it has; --apply releases it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newControllerClient()
			if err != nil {
				return err
			}
			var p api.Plan
			if apply {
				var res api.ApplyResult
				if err := c.do(cmd.Context(), http.MethodPost, f.groupPath()+"/apply", nil, &res); err != nil {
					return err
				}
				p = *res.Plan
				defer fmt.Fprintf(cmd.OutOrStdout(), "applied generation %d to %d targets\n", res.Generation, len(res.Targets))
			} else if err := c.do(cmd.Context(), http.MethodGet, f.groupPath()+"/plan", nil, &p); err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), format, p, func(w *tabwriter.Writer) { planTable(w, &p) })
		},
	}
	f.add(cmd, true)
	cmd.Flags().BoolVar(&apply, "apply", false, "apply the plan")
	cmd.Flags().StringVarP(&format, "output", "o", "", "yaml or json")
	return cmd
}

func planTable(w *tabwriter.Writer, p *api.Plan) {
	fmt.Fprintln(w, "TARGET\tACTION\tKIND\tNAME\tCHANGES")
	var tps []*api.TargetPlan
	for _, tp := range p.Clusters {
		tps = append(tps, tp)
	}
	for _, tp := range p.DNS {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool { return tps[i].Target < tps[j].Target })
	for _, tp := range tps {
		for _, ch := range tp.Objects {
			name := ch.Ref.Name
			if ch.Ref.Namespace != "" {
				name = ch.Ref.Namespace + "/" + name
			}
			var diffs []string
			for _, d := range ch.Diff {
				diffs = append(diffs, fmt.Sprintf("%s: %v -> %v", d.Path, d.Old, d.New))
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ch.Target, ch.Action, ch.Ref.Kind, name, strings.Join(diffs, "; "))
		}
	}
}

// controllerStatus prints the delivery status of one traffic group
// (args[0] = PROJECT/APP/VERSION/GROUP) or of every group.
func controllerStatus(cmd *cobra.Command, args []string) error {
	c, err := newControllerClient()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var groups []string
	if len(args) > 0 {
		groups = args
	} else if groups, err = allGroups(ctx, c); err != nil {
		return err
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "GROUP\tTARGET\tKIND\tNAME\tSTATE\tATTEMPTS\tAT\tERROR")
	for _, grp := range groups {
		parts := strings.Split(grp, "/")
		if len(parts) != 4 {
			return fmt.Errorf("%q is not PROJECT/APP/VERSION/GROUP", grp)
		}
		f := groupFlags{parts[0], parts[1], parts[2], parts[3]}
		var st api.GroupStatus
		if err := c.do(ctx, http.MethodGet, f.groupPath()+"/status", nil, &st); err != nil {
			return err
		}
		if st.Generation == 0 {
			fmt.Fprintf(w, "%s\t-\t-\t-\t%s\t\t\t\n", grp, st.State)
			continue
		}
		for _, m := range []map[string]*api.TargetStatus{st.Clusters, st.DNS} {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				for _, r := range m[k].Resources {
					at := "-"
					if !r.At.IsZero() {
						at = r.At.Format("2006-01-02T15:04:05Z")
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", grp, r.Target, r.Kind, r.Name, r.State, r.Attempts, at, r.Error)
				}
			}
		}
	}
	return w.Flush()
}

// allGroups lists every traffic group as PROJECT/APP/VERSION/GROUP.
func allGroups(ctx context.Context, c *controllerClient) ([]string, error) {
	type named struct {
		Metadata struct{ Name string }    `json:"metadata"`
		Spec     struct{ Version string } `json:"spec"`
	}
	var projects, apps, groups struct{ Items []named }
	if err := c.do(ctx, http.MethodGet, "/v2/projects", nil, &projects); err != nil {
		return nil, err
	}
	var out []string
	for _, p := range projects.Items {
		if err := c.do(ctx, http.MethodGet, "/v2/projects/"+p.Metadata.Name+"/apps", nil, &apps); err != nil {
			return nil, err
		}
		for _, a := range apps.Items {
			prefix := p.Metadata.Name + "/" + a.Metadata.Name + "/" + a.Spec.Version
			groups.Items = nil
			if err := c.do(ctx, http.MethodGet, "/v2/projects/"+p.Metadata.Name+"/apps/"+a.Metadata.Name+"/"+a.Spec.Version+"/traffic-groups", nil, &groups); err != nil {
				return nil, err
			}
			for _, grp := range groups.Items {
				out = append(out, prefix+"/"+grp.Metadata.Name)
			}
		}
	}
	return out, nil
}
