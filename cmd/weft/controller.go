package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/apiclient"
	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/controller"
	"weft.dev/weft/internal/controller/reconcile"
)

func newControllerCmd() *cobra.Command {
	var (
		listen, db string
		maxBackoff time.Duration
		lf         logFlags
		tf         traceFlags
	)
	run := &cobra.Command{
		Use:   "run --data DIR [--listen HOST:PORT] [--db sqlite://PATH|postgres://...]",
		Short: "Serve the intent API and sync every cluster",
		Long: `Serve the controller's intent API until SIGTERM or SIGINT, and deliver each
traffic group's released intents to its clusters (Kubernetes API, weft sites,
DNS). It writes the address it serves on (api.addr) and its admin token
(admin.token) under --data: other commands find it with --controller DIR.`,
		Example: `  weft controller run --data ~/weft/controller
  weft controller run --data ~/weft/controller --listen 127.0.0.1:7480 --db postgres://weft@db/weft
  weft controller run --data ~/weft/controller --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.data == "" {
				return errors.New("controller run needs --data DIR, the directory for its admin token and (by default) its SQLite database")
			}
			log, err := lf.logger("weft controller")
			if err != nil {
				return err
			}
			tp, err := tf.start(cmd.Context(), "weft-controller", log)
			if err != nil {
				return err
			}
			defer tf.stop(tp, log)
			return controller.Run(cmd.Context(), controller.Options{
				Data: g.data, Listen: listen, DB: db, Logger: log, Tracing: tp,
				Engine: reconcile.Options{MaxBackoff: maxBackoff},
				// With --listen HOST:0 the file is the only way to learn the port.
				Ready: func(addr string) {
					if err := os.WriteFile(filepath.Join(g.data, controller.AddrFile), []byte(addr+"\n"), 0o644); err != nil {
						log.Warn("writing the API address", "err", err)
					}
				},
			})
		},
	}
	run.Flags().StringVar(&listen, "listen", "127.0.0.1:7480", "API address (port 0: any free port, written to DATA/api.addr)")
	run.Flags().DurationVar(&maxBackoff, "max-backoff", 0, "cap of the retry delay for an unreachable target (default 5m)")
	run.Flags().StringVar(&db, "db", "", "database URL (default sqlite://DATA/controller.db)")
	lf.add(run)
	tf.add(run)

	status := &cobra.Command{
		Use:   "status [PROJECT/APP/VERSION/GROUP]",
		Short: "Show the delivery status of one traffic group, or of every one",
		Example: `  weft --controller ~/weft/controller controller status
  weft --controller http://127.0.0.1:7480 controller status p1/shop/v1/g1`,
		Args: cobra.MaximumNArgs(1),
		RunE: controllerStatus,
	}
	return group(&cobra.Command{
		Use:   "controller",
		Short: "Run the intent controller and see what it delivered",
		Example: `  weft controller run --data ~/weft/controller
  weft --controller ~/weft/controller controller status`,
	}, run, status)
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

// collectionFor returns where a document of kind is created, or which flag
// (or earlier document) it lacks.
func (f *groupFlags) collectionFor(kind string) (string, error) {
	need := func(names ...string) error {
		vals := map[string]string{"project": f.project, "app": f.app, "version": f.version, "group": f.group}
		for _, n := range names {
			if vals[n] == "" {
				return fmt.Errorf("a %s needs its %s: put the document after the one that defines it, or pass --%s", kind, n, n)
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

// enter makes a document the parent of the documents after it: a Project
// locates the Clusters and Apps after it, an App the TrafficGroups, a
// TrafficGroup the Intents.
func (f *groupFlags) enter(kind, name string, obj map[string]any) {
	switch kind {
	case "Project":
		f.project = name
	case "App":
		spec, _ := obj["spec"].(map[string]any)
		v, _ := spec["version"].(string)
		f.app, f.version = name, v
	case "TrafficGroup":
		f.group = name
	}
}

func newIntentCmd() *cobra.Command {
	var file string
	var f groupFlags
	apply := &cobra.Command{
		Use:   "apply -f FILE [--project P --app A --version V --group G]",
		Short: "Create or update every document of FILE (kinds Project, Cluster, App, TrafficGroup, Intent)",
		Long: `Create or update every document of FILE at the controller, in order, and print
one line per document. A document is created under the Project, App and
TrafficGroup documents before it in the file, or those the flags name. Every
document is located before any is sent, so a file that cannot be placed whole
changes nothing.

${NAME} in FILE is replaced by the environment variable NAME (an unset one is an
error), so that a file can name a site's admin address and token without
holding them.`,
		Example: `  export EAST_ADMIN=$(cat ~/weft/east/admin.addr) EAST_TOKEN=$(cat ~/weft/east/admin.token)
  weft --controller ~/weft/controller intent apply -f examples/controller/intents.yaml
  weft --controller ~/weft/controller intent apply -f intent.yaml --project p1 --app shop --version v1 --group g1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newControllerClient()
			if err != nil {
				return err
			}
			data, err := readFileOrStdin(file)
			if err != nil {
				return err
			}
			if data, err = expandEnv(data); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			docs, err := locateDocuments(data, f)
			if err != nil {
				return fmt.Errorf("%s: %w (nothing was applied)", file, err)
			}
			return applyDocuments(cmd.Context(), c, docs)
		},
	}
	apply.Flags().StringVarP(&file, "filename", "f", "", "YAML or JSON file, - for stdin")
	// --file was this flag's name; -f is the same as for `weft apply`.
	apply.Flags().StringVar(&file, "file", "", "YAML or JSON file, - for stdin")
	apply.Flags().MarkDeprecated("file", "use -f/--filename")
	apply.MarkFlagsOneRequired("filename", "file")
	apply.MarkFlagFilename("filename", "yaml", "yml", "json")
	f.add(apply, false)
	return group(&cobra.Command{
		Use:   "intent",
		Short: "Manage the controller's projects, clusters, apps, traffic groups and intents",
		Example: `  weft --controller ~/weft/controller intent apply -f examples/controller/intents.yaml
  weft --controller ~/weft/controller plan --project p1 --app shop --version v1 --group g1 --apply`,
	}, apply)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} with the environment variable NAME; an unset
// one is an error rather than an empty field the API refuses later.
func expandEnv(data []byte) ([]byte, error) {
	var missing []string
	out := envRef.ReplaceAllFunc(data, func(m []byte) []byte {
		name := string(envRef.FindSubmatch(m)[1])
		v, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return []byte(v)
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("it uses %s, not set in the environment: export them first", "${"+strings.Join(missing, "}, ${")+"}")
	}
	return out, nil
}

// intentDoc is one document of an intent file, located: the collection it
// is created in and its item path for an update.
type intentDoc struct {
	index      int
	kind, name string
	obj        map[string]any
	coll, item string
}

// locateDocuments parses every document and finds where it goes, before
// anything is sent.
func locateDocuments(data []byte, f groupFlags) ([]intentDoc, error) {
	var out []intentDoc
	err := eachDocument(data, func(i int, raw []byte) error {
		var obj map[string]any
		if err := yaml.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if len(obj) == 0 {
			return nil
		}
		kind, _ := obj["kind"].(string)
		delete(obj, "kind")
		delete(obj, "apiVersion")
		meta, _ := obj["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		coll, err := f.collectionFor(kind)
		if err != nil {
			return fmt.Errorf("document %d (%s %s): %w", i, kind, name, err)
		}
		item := coll + "/" + name
		if kind == "App" {
			spec, _ := obj["spec"].(map[string]any)
			v, _ := spec["version"].(string)
			item += "/" + v
		}
		out = append(out, intentDoc{index: i, kind: kind, name: name, obj: obj, coll: coll, item: item})
		f.enter(kind, name, obj)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// applyDocuments creates each document, or replaces it if it exists, and
// prints what it did; a document that fails does not stop the others.
func applyDocuments(ctx context.Context, c *controllerClient, docs []intentDoc) error {
	failed := 0
	for _, d := range docs {
		err := c.do(ctx, http.MethodPost, d.coll, d.obj, nil)
		verb := apitype.ApplyCreated
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Code == apitype.CodeAlreadyExists {
			err, verb = c.do(ctx, http.MethodPut, d.item, d.obj, nil), apitype.ApplyConfigured
		}
		ref := strings.ToLower(d.kind) + "/" + d.name
		if err != nil {
			failed++
			fmt.Fprintf(g.stdout, "%s failed: %v\n", ref, err)
			continue
		}
		fmt.Fprintf(g.stdout, "%s %s\n", ref, verb)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d documents failed; the others were applied", failed, len(docs))
	}
	return nil
}

func newPlanCmd() *cobra.Command {
	var f groupFlags
	var format string
	var apply bool
	cmd := &cobra.Command{
		Use:   "plan --project P --app A --version V --group G [--apply]",
		Short: "Show what each cluster would get from a traffic group, as a diff against what it has; --apply releases it",
		Example: `  weft --controller ~/weft/controller plan --project p1 --app shop --version v1 --group g1
  weft --controller ~/weft/controller plan --project p1 --app shop --version v1 --group g1 --apply`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newControllerClient()
			if err != nil {
				return err
			}
			var p apitype.Plan
			if apply {
				var res apitype.GroupApplyResult
				if err := c.do(cmd.Context(), http.MethodPost, f.groupPath()+"/apply", nil, &res); err != nil {
					return err
				}
				p = *res.Plan
				defer fmt.Fprintf(g.stdout, "applied generation %d to %d targets: `weft controller status %s/%s/%s/%s` shows their delivery\n",
					res.Generation, len(res.Targets), f.project, f.app, f.version, f.group)
			} else if err := c.do(cmd.Context(), http.MethodGet, f.groupPath()+"/plan", nil, &p); err != nil {
				return err
			}
			return output(g.stdout, format, p, func(w io.Writer, wide bool) { planTable(w, &p) })
		},
	}
	f.add(cmd, true)
	cmd.Flags().BoolVar(&apply, "apply", false, "apply the plan")
	addOutputFlag(cmd, &format, formatTable, formatJSON, formatYAML)
	return cmd
}

func planTable(w io.Writer, p *apitype.Plan) {
	row(w, "TARGET", "ACTION", "KIND", "NAME", "CHANGES")
	var tps []*apitype.TargetPlan
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
			row(w, ch.Target, ch.Action, ch.Ref.Kind, name, orDash(strings.Join(diffs, "; ")))
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
	w := newTable(g.stdout)
	row(w, "GROUP", "TARGET", "KIND", "NAME", "STATE", "ATTEMPTS", "AT", "ERROR")
	for _, grp := range groups {
		parts := strings.Split(grp, "/")
		if len(parts) != 4 {
			return fmt.Errorf("%q is not PROJECT/APP/VERSION/GROUP", grp)
		}
		f := groupFlags{parts[0], parts[1], parts[2], parts[3]}
		var st apitype.GroupStatus
		if err := c.do(ctx, http.MethodGet, f.groupPath()+"/status", nil, &st); err != nil {
			return err
		}
		if st.Generation == 0 {
			row(w, grp, "-", "-", "-", st.State, "-", "-", "-")
			continue
		}
		for _, m := range []map[string]*apitype.TargetStatus{st.Clusters, st.DNS} {
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
					row(w, grp, r.Target, r.Kind, r.Name, r.State, r.Attempts, at, orDash(r.Error))
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
	var projects, apps, groups apitype.List[named]
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
