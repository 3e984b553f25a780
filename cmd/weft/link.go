package main

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/resource"
)

var linkKind = kind[resource.Link]{
	name: "link", collection: "links",
	itemName: func(l resource.Link) string { return l.Name },
	header: func(wide bool) []any {
		h := []any{"NAME", "PEER", "STATE", "COST", "RTT", "DIRECTION", "ERROR"}
		if wide {
			h = append(h, "PEER ID")
		}
		return h
	},
	row: func(l resource.Link, wide bool) []any {
		dir := "out"
		if l.Status.Inbound {
			dir = "in"
		}
		r := []any{l.Name, l.Status.PeerName, l.Status.State, l.Spec.Cost, orDash(l.Status.RTT), dir, orDash(l.Status.Error)}
		if wide {
			r = append(r, l.Status.Peer)
		}
		return r
	},
}

func newLinkCmd() *cobra.Command {
	var (
		name   string
		cost   uint32
		format string
	)
	create := &cobra.Command{
		Use:   "create TOKEN_FILE",
		Short: "Redeem a token issued by another site and wait until the link is up",
		Long: `Redeem an access token issued by another site ('weft token issue' there) and
wait until the link is up and its first heartbeat measured the round trip, then
print "link NAME up (rtt ...)". If the token is refused (expired, used up,
unknown, issued by this very site) or the link does not come up, it fails with
the reason. TOKEN_FILE - reads the token from stdin.`,
		Example: `  weft --site ~/weft/east link create ~/weft/token.yaml
  weft --site ~/weft/east link create token.yaml --cost 10 --name to-west
  weft --site ~/weft/west token issue | weft --site ~/weft/east link create -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			tok, err := readToken(args[0])
			if err != nil {
				return err
			}
			l := resource.Link{Spec: resource.LinkSpec{Cost: cost, Token: tok}}
			l.Name = name
			stop := progress(g.stderr, fmt.Sprintf("linking to %s (%s)", tok.Spec.IssuerName, strings.Join(tok.Spec.Addresses, ", ")))
			var got resource.Link
			err = c.json(cmd.Context(), "POST", "/v1/links", l, &got)
			stop()
			if err != nil {
				return fmt.Errorf("no link to %s: %w", tok.Spec.IssuerName, err)
			}
			switch format {
			case formatName:
				fmt.Fprintln(g.stdout, got.Name)
				return nil
			case formatJSON, formatYAML:
				return output(g.stdout, format, got, nil)
			}
			rtt := got.Status.RTT
			if rtt == "" {
				rtt = "not measured yet"
			}
			fmt.Fprintf(g.stdout, "link %s %s (rtt %s)\n", got.Name, got.Status.State, rtt)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "link name (default: the issuing site's name)")
	create.Flags().Uint32Var(&cost, "cost", 1, "link cost for routing")
	addOutputFlag(create, &format, formatTable, formatName, formatJSON, formatYAML)
	rotate := &cobra.Command{
		Use:   "rotate NAME...",
		Short: "Get a new link certificate from the issuing site, over the live link",
		Long: `Make a new key for each named link (made here with 'weft link create') and get
its certificate from the issuing site over the live link. Streams on the link
carry on; the next connection uses the new certificate, and the issuer refuses
the old one from then on. Sites also rotate on their own when a third of a
certificate's life is left, or when it names the ID a site had before it moved
to the one derived from its identity key.`,
		Example:           `  weft --site ~/weft/east link rotate west`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: linkKind.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := c.json(cmd.Context(), "POST", "/v1/links/"+url.PathEscape(name)+"/rotate", nil, nil); err != nil {
					return fmt.Errorf("link %s: %w", name, err)
				}
				fmt.Fprintf(g.stdout, "link/%s rotated\n", name)
			}
			return nil
		},
	}
	return group(&cobra.Command{
		Use:   "link",
		Short: "Links to other sites",
		Example: `  weft --site ~/weft/east link create ~/weft/token.yaml
  weft --site ~/weft/east link list
  weft --site ~/weft/east link rotate west
  weft --site ~/weft/east link delete west`,
	}, create, rotate,
		listCmd(linkKind, `  weft --site ~/weft/east link list
  weft --site ~/weft/east link get west -o yaml`),
		deleteCmd(linkKind, "Delete links (at the issuer this revokes them; at the redeemer the issuer forgets them too)",
			`  weft --site ~/weft/east link delete west`))
}

// readToken reads the one AccessToken of a token file, or of stdin for -.
func readToken(file string) (*resource.AccessToken, error) {
	b, err := readFileOrStdin(file)
	if err != nil {
		return nil, err
	}
	objs, err := resource.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(objs) != 1 || objs[0].Kind != resource.KindAccessToken {
		return nil, fmt.Errorf("%s does not hold one AccessToken: make one with `weft token issue` at the other site", file)
	}
	return objs[0].Object.(*resource.AccessToken), nil
}

func readFileOrStdin(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	}
	return os.ReadFile(name)
}
