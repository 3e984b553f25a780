package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/apitype"
)

var revocationKind = kind[apitype.Revocation]{
	name: "revocation", collection: "revocations",
	itemName: func(r apitype.Revocation) string { return r.Site },
	header: func(wide bool) []any {
		h := []any{"SITE", "KIND", "ISSUED", "REASON"}
		if wide {
			h = append(h, "STATEMENT")
		}
		return h
	},
	row: func(r apitype.Revocation, wide bool) []any {
		out := []any{r.Site, r.Kind, r.Issued.Local().Format(time.DateTime), orDash(r.Reason)}
		if wide {
			out = append(out, r.Statement)
		}
		return out
	},
}

func newRevocationCmd() *cobra.Command {
	var (
		reason string
		format string
	)
	post := func(cmd *cobra.Command, req apitype.RevocationRequest) error {
		c, err := siteClient()
		if err != nil {
			return err
		}
		var got apitype.Revocation
		if err := c.json(cmd.Context(), "POST", "/v1/revocations", req, &got); err != nil {
			return err
		}
		if format == formatTable {
			fmt.Fprintf(g.stdout, "revocation/%s created\n", got.Site)
			return nil
		}
		return output(g.stdout, format, got, nil)
	}
	create := &cobra.Command{
		Use:   "create [--reason TEXT]",
		Short: "Revoke this very site, for good, with its own identity key",
		Long: `Revoke this site: it signs a statement with its identity key and sends it to
every site it is linked to, which pass it on. Every site that gets it drops this
one from its tables at once and refuses it from then on, across restarts. There
is no undoing it: a revoked site must start over with a new --data directory.
Use it when a site is retired or its key may have leaked. -o yaml prints the
statement, which 'weft revocation add' hands to sites not linked to this one.`,
		Example: `  weft --site ~/weft/east revocation create --reason "key leaked"
  weft --site ~/weft/east revocation create -o yaml > east-revoked.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(cmd, apitype.RevocationRequest{Self: true, Reason: reason})
		},
	}
	create.Flags().StringVar(&reason, "reason", "", "why, for operators reading it (at most 256 bytes)")
	addOutputFlag(create, &format, formatTable, formatJSON, formatYAML)
	var addFormat string
	add := &cobra.Command{
		Use:   "add STATEMENT_FILE",
		Short: "Hand a revocation made at another site to this one, which checks and floods it",
		Long: `Hand this site a revocation statement (from 'weft revocation create -o yaml'
at the revoked site): it checks the signature, drops the revoked site from its
tables, refuses it from then on and passes the statement to every site it is
linked to. STATEMENT_FILE may be the YAML or JSON that create printed, or the
bare base64 statement; - reads stdin.`,
		Example: `  weft --site ~/weft/west revocation add east-revoked.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := readFileOrStdin(args[0])
			if err != nil {
				return err
			}
			stmt := strings.TrimSpace(string(b))
			var doc apitype.Revocation
			if err := yaml.Unmarshal(b, &doc); err == nil {
				stmt = doc.Statement // a document (or nothing): its statement only
			}
			if stmt == "" {
				return fmt.Errorf("%s holds no revocation statement: give the file 'weft revocation create -o yaml' or 'weft org revoke' wrote", args[0])
			}
			format = addFormat
			return post(cmd, apitype.RevocationRequest{Statement: stmt})
		},
	}
	addOutputFlag(add, &addFormat, formatTable, formatJSON, formatYAML)
	return group(&cobra.Command{
		Use:   "revocation",
		Short: "Revoked sites: take a site out of the network for good",
		Example: `  weft --site ~/weft/east revocation create --reason retired
  weft --site ~/weft/west revocation list`,
	}, create, add,
		listCmd(revocationKind, `  weft --site ~/weft/west revocation list
  weft --site ~/weft/west revocation list -o wide`))
}
