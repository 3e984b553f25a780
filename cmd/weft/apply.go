package main

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/resource"
)

func newApplyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update the resources of FILE (several per file, separated by ---)",
		Long: `Create or update every resource of FILE at the site, in order: kinds Listener,
Connector, Topic, Queue, Subscription, Bridge, Network, NetworkAttachment, Link
(with spec.token) and AccessToken
(redeemed into a link to its issuer). One line per document says what happened:
created, configured, unchanged or failed. A document that fails does not stop
the others, and then apply exits non-zero. - reads stdin.`,
		Example: `  weft --site ~/weft/west apply -f examples/site/resources.yaml
  weft --site ~/weft/east apply -f ~/weft/token.yaml      # an AccessToken: link to its issuer
  cat resources.yaml | weft --site ~/weft/west apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := readFileOrStdin(file)
			if err != nil {
				return err
			}
			docs, err := splitDocuments(b)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if len(docs) == 0 {
				return fmt.Errorf("%s holds no resource", file)
			}
			c, err := siteClient()
			if err != nil {
				return err
			}
			// Each document is checked here first, so that one that is
			// not valid is reported as failed while the others go on.
			var valid [][]byte
			for _, d := range docs {
				if d.err == nil {
					valid = append(valid, d.raw)
				}
			}
			var out apitype.ApplyResponse
			if len(valid) > 0 {
				body := bytes.Join(valid, []byte("\n---\n"))
				if err := c.do(cmd.Context(), "POST", "/v1/apply", bytes.NewReader(body), "application/yaml", &out); err != nil {
					return err
				}
				if len(out.Items) != len(valid) {
					return fmt.Errorf("the site answered %d results for %d documents", len(out.Items), len(valid))
				}
			}
			failed := 0
			for _, d := range docs {
				r := apitype.ApplyResult{Kind: d.kind, Name: d.name, Result: apitype.ApplyFailed}
				if d.err == nil {
					r, out.Items = out.Items[0], out.Items[1:]
				}
				ref := strings.ToLower(cmp.Or(r.Kind, "document")) + "/" + cmp.Or(r.Name, fmt.Sprint(d.index))
				switch {
				case d.err != nil:
					fmt.Fprintf(g.stdout, "%s failed: document %d: %v\n", ref, d.index, d.err)
				case r.Error != nil:
					fmt.Fprintf(g.stdout, "%s failed: %s\n", ref, r.Error.Message)
				default:
					fmt.Fprintf(g.stdout, "%s %s\n", ref, r.Result)
				}
				if r.Result == apitype.ApplyFailed {
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d documents failed; the others were applied", failed, len(docs))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file with resources (- for stdin)")
	cmd.MarkFlagRequired("filename")
	cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	return cmd
}

// document is one document of an apply file: its text, its kind and name
// as far as they can be read, and why it is not a valid resource, if it
// is not.
type document struct {
	index      int // 1-based, counting every document of the file
	raw        []byte
	kind, name string
	err        error
}

// eachDocument calls f with every document of a YAML or JSON stream and
// its 1-based index, until f fails.
func eachDocument(b []byte, f func(i int, raw []byte) error) error {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for i := 1; ; i++ {
		raw, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if err := f(i, raw); err != nil {
			return err
		}
	}
}

// splitDocuments splits a YAML or JSON stream into its documents, checking
// each on its own; comment-only documents are skipped.
func splitDocuments(b []byte) ([]document, error) {
	var out []document
	err := eachDocument(b, func(i int, raw []byte) error {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		yaml.Unmarshal(raw, &meta)
		objs, err := resource.Decode(bytes.NewReader(raw))
		if err == nil && len(objs) == 0 {
			return nil
		}
		if err != nil {
			// Decode numbers documents itself; here there is one.
			err = errors.Unwrap(err)
		}
		out = append(out, document{index: i, raw: raw, kind: meta.Kind, name: meta.Metadata.Name, err: err})
		return nil
	})
	return out, err
}
