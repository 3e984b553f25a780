package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/apitype"
)

// rotateKeyCmd is `weft site rotate-key`.
func rotateKeyCmd() *cobra.Command {
	var (
		revoke bool
		format string
	)
	cmd := &cobra.Command{
		Use:   "rotate-key [--revoke-previous]",
		Short: "Replace the site's operational and seal keys; its ID, links and streams stay",
		Long: `Make a new operational key, certified by the site's identity key (identity.key,
whose hash is the site ID, so the ID does not change), and a new seal key for
end-to-end streams. The site floods a record signed by the new key; every live
link gets a proof by the new key on the spot, and streams and seal sessions
carry on until they rekey. Sites also rotate on their own when a third of the
key's life is left. --revoke-previous also revokes the replaced key, so every
site refuses what it signs from then on: use it when the key may have leaked.`,
		Example: `  weft --site ~/weft/east site rotate-key
  weft --site ~/weft/east site rotate-key --revoke-previous -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			var got apitype.KeyRotation
			if err := c.json(cmd.Context(), "POST", "/v1/site/rotate-key", apitype.KeyRotationRequest{RevokePrevious: revoke}, &got); err != nil {
				return err
			}
			if format != formatTable {
				return output(g.stdout, format, got, nil)
			}
			fmt.Fprintf(g.stdout, "site/%s key rotated (serial %d, valid until %s)\n", got.Site, got.Serial, got.NotAfter.Format("2006-01-02T15:04:05Z"))
			if got.Revoked {
				fmt.Fprintf(g.stdout, "previous key %s revoked\n", got.Previous)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&revoke, "revoke-previous", false, "also revoke the key replaced, so every site refuses what it signs")
	addOutputFlag(cmd, &format, formatTable, formatJSON, formatYAML)
	return cmd
}
