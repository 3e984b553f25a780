package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/resource"
)

var tokenKind = kind[apitype.TokenView]{
	name: "token", collection: "tokens", deleted: "revoked",
	itemName: func(t apitype.TokenView) string { return t.Name },
	header: func(wide bool) []any {
		if wide {
			return []any{"NAME", "STATE", "EXPIRES", "REDEEMED", "ID"}
		}
		return []any{"NAME", "STATE", "EXPIRES", "REDEEMED"}
	},
	row: func(t apitype.TokenView, wide bool) []any {
		r := []any{t.Name, t.State, t.Expires.Local().Format(time.DateTime), fmt.Sprintf("%d/%d", t.Redeemed, t.Uses)}
		if wide {
			r = append(r, t.ID)
		}
		return r
	},
}

func newTokenCmd() *cobra.Command {
	var (
		expires      time.Duration
		uses         int
		file, format string
	)
	issue := &cobra.Command{
		Use:   "issue [--expires 15m] [--uses 1] [-f FILE]",
		Short: "Issue an access token for `weft link create` at another site",
		Long: `Issue an access token: the other site redeems it with 'weft link create FILE'
to make a link to this one. The token holds a secret: keep it like a password.
It is printed as YAML, or written to --file with mode 0600.`,
		Example: `  weft --site ~/weft/west token issue -f ~/weft/token.yaml
  weft --site ~/weft/west token issue --expires 1h --uses 3 > token.yaml
  weft --site ~/weft/west token issue -o json`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, args []string) error {
			// -o FILE was the token file before -o became the output
			// format everywhere; scripts that say so keep working.
			if !slices.Contains([]string{formatYAML, formatJSON}, format) && !cmd.Flags().Changed("file") {
				fmt.Fprintf(g.stderr, "weft: -o %s as the token file is deprecated: use --file %s (-o is the output format, yaml or json)\n", format, format)
				file, format = format, formatYAML
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			req := apitype.TokenRequest{Expires: expires.String(), Uses: &uses}
			var tok resource.AccessToken
			if err := c.json(cmd.Context(), "POST", "/v1/tokens", req, &tok); err != nil {
				return err
			}
			b, err := yaml.Marshal(tok)
			if format == formatJSON {
				b, err = json.MarshalIndent(tok, "", "  ")
				b = append(b, '\n')
			}
			if err != nil {
				return err
			}
			if file == "" || file == "-" {
				_, err = g.stdout.Write(b)
				return err
			}
			if err := os.WriteFile(file, b, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "token/%s written to %s (expires %s, %d use(s)): at the other site, run `weft link create %s`\n",
				tok.Name, file, tok.Spec.Expires.Local().Format(time.DateTime), tok.Spec.Uses, file)
			return nil
		},
	}
	issue.Flags().DurationVar(&expires, "expires", 15*time.Minute, "how long the token may be redeemed")
	issue.Flags().IntVar(&uses, "uses", 1, "how many sites may redeem it (at least 1)")
	issue.Flags().StringVarP(&file, "file", "f", "", "write the token to this file (mode 0600) instead of stdout")
	issue.Flags().StringVarP(&format, "output", "o", formatYAML, "output format: yaml or json")
	issue.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{formatYAML, formatJSON}, cobra.ShellCompDirectiveNoFileComp))

	revoke := deleteCmd(tokenKind, "Revoke tokens that were not redeemed yet, by name or ID (links made with them stay: `weft link delete` ends those)",
		`  weft --site ~/weft/west token revoke west-3f2a9c1b`)
	revoke.Use, revoke.Aliases = "revoke NAME...", []string{"delete", "rm"}
	return group(&cobra.Command{
		Use:   "token",
		Short: "Access tokens that let other sites link to this one",
		Example: `  weft --site ~/weft/west token issue -f ~/weft/token.yaml
  weft --site ~/weft/west token list
  weft --site ~/weft/west token revoke west-3f2a9c1b`,
	}, issue, listCmd(tokenKind, `  weft --site ~/weft/west token list
  weft --site ~/weft/west token list -o json`), revoke)
}
