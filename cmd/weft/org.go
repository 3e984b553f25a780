package main

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/policy"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/revocation"
	"weft.dev/weft/internal/siteid"
)

// An organisation key is an Ed25519 key in the PKCS#8 PEM form of a site
// identity key (identity.SiteKey), with the organisation's name as a PEM
// header.
func readOrgKey(file string) (*identity.SiteKey, error) {
	if file == "" {
		return nil, errors.New("which organisation? pass --org-key FILE (made by `weft org create NAME > FILE`)")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	k, err := identity.ParseSiteKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return k, nil
}

func orgID(k *identity.SiteKey) policy.OrgID { return policy.OrgIDOf(k.Public()) }

// orgKeyAndSite reads --org-key and parses --site, for what an
// organisation says about one of its sites.
func orgKeyAndSite(keyFile, site string) (*identity.SiteKey, siteid.ID, error) {
	k, err := readOrgKey(keyFile)
	if err != nil {
		return nil, siteid.ID{}, err
	}
	sid, err := siteid.Parse(site)
	if err != nil {
		return nil, siteid.ID{}, fmt.Errorf("--site: %w", err)
	}
	return k, sid, nil
}

func newOrgCmd() *cobra.Command {
	var keyFile, site, format string
	create := &cobra.Command{
		Use:   "create NAME > ORG.key",
		Short: "Make an organisation: a new key, printed as PEM (keep it like a password)",
		Long: `Make an organisation key and print it (PEM) to stdout; its ID goes to stderr.
The key certifies the organisation's sites (weft org certify); keep it offline:
whoever holds it can make any site a member.`,
		Example: `  weft org create acme > acme.key`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := resource.ValidateName(args[0]); err != nil {
				return err
			}
			k, err := identity.NewSiteKey()
			if err != nil {
				return err
			}
			b, err := k.PEM()
			if err != nil {
				return err
			}
			blk, _ := pem.Decode(b)
			blk.Headers = map[string]string{"Organisation": args[0]}
			if _, err := g.stdout.Write(pem.EncodeToMemory(blk)); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "organisation %s: ID %s\n", args[0], orgID(k))
			return nil
		},
	}
	id := &cobra.Command{
		Use:     "id --org-key FILE",
		Short:   "Print an organisation's ID, which exports and imports name",
		Example: `  weft org id --org-key acme.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := readOrgKey(keyFile)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, orgID(k))
			return nil
		},
	}
	certify := &cobra.Command{
		Use:   "certify --org-key FILE --site SITE-ID > SITE.cert",
		Short: "Certify a site as a member of the organisation; the site installs the certificate",
		Long: `Print the organisation's certificate for a site (its ID, as 'weft org show' or
'weft status' at the site prints it). Install it at the site with
'weft --site DIR org install SITE.cert'; the site carries it in its signed record.`,
		Example: `  weft org certify --org-key acme.key --site 92c13e6a7d64bee360fef00d50ab433a > east.cert`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, sid, err := orgKeyAndSite(keyFile, site)
			if err != nil {
				return err
			}
			c := policy.Certify(k.Private(), sid)
			_, err = g.stdout.Write(c.PEM())
			return err
		},
	}
	var reason string
	revoke := &cobra.Command{
		Use:   "revoke --org-key FILE --site SITE-ID [--reason TEXT] > SITE.revoked",
		Short: "Revoke a site the organisation certified; hand the statement to any site with 'weft revocation add'",
		Long: `Print the organisation's revocation statement for one of its sites (base64).
Any site that knows the site as a member of the organisation (it carries the
certificate in its signed record) takes it with 'weft revocation add FILE',
drops the site from its tables, refuses it from then on and floods the
statement to every site linked to it, as for a site's own revocation.`,
		Example: `  weft org revoke --org-key acme.key --site 92c13e6a7d64bee360fef00d50ab433a --reason "host retired" > east.revoked
  weft --site ~/weft/west revocation add east.revoked`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, sid, err := orgKeyAndSite(keyFile, site)
			if err != nil {
				return err
			}
			stmt, err := revocation.New(revocation.ByOrganisation, sid, k.Private(), time.Now().Unix(), reason)
			if err != nil {
				return err
			}
			b, err := stmt.MarshalBinary()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, base64.StdEncoding.EncodeToString(b))
			return err
		},
	}
	revoke.Flags().StringVar(&reason, "reason", "", "why, for the sites' logs and 'weft revocation list'")
	var credential, certDir string
	var life time.Duration
	eventCert := &cobra.Command{
		Use:   "event-cert --org-key FILE --credential NAME [--expires DURATION] [--cert-dir DIR]",
		Short: "Issue an event API client certificate that every site of the organisation accepts",
		Long: `Write NAME.crt (the certificate, then the organisation's CA certificate: present
both) and NAME.key to --cert-dir. A client presenting them over TLS at the event
port (https://) of any site of the organisation that has a credential NAME made
with 'weft credential create NAME --organisation' gets that credential's
permissions there; deleting the credential at a site refuses it there.`,
		Example: `  weft org event-cert --org-key acme.key --credential shop --expires 720h --cert-dir ./tls
  weft --site ~/weft/east credential create shop --publish 'orders.>' --organisation`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := readOrgKey(keyFile)
			if err != nil {
				return err
			}
			certPEM, keyPEM, err := identity.SignOrgEventClient(k.Private(), orgID(k).String(), credential, time.Now(), life)
			if err != nil {
				return err
			}
			for _, f := range []struct {
				name string
				body []byte
				mode os.FileMode
			}{{credential + ".key", keyPEM, 0o600}, {credential + ".crt", certPEM, 0o644}} {
				p := filepath.Join(certDir, f.name)
				if err := os.WriteFile(p, f.body, f.mode); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, p)
			}
			return nil
		},
	}
	eventCert.Flags().StringVar(&credential, "credential", "", "the name of the event credential the certificate stands for at each site")
	eventCert.Flags().DurationVar(&life, "expires", 30*24*time.Hour, "how long the certificate is valid")
	eventCert.Flags().StringVar(&certDir, "cert-dir", ".", "where NAME.crt and NAME.key are written")
	eventCert.MarkFlagRequired("credential")
	for _, c := range []*cobra.Command{id, certify, revoke, eventCert} {
		c.Flags().StringVar(&keyFile, "org-key", "", "the organisation's key file (weft org create)")
	}
	for _, c := range []*cobra.Command{certify, revoke} {
		c.Flags().StringVar(&site, "site", "", "the site's ID")
	}
	install := &cobra.Command{
		Use:     "install SITE.cert",
		Short:   "Make this site a member of the organisation that certified it",
		Example: `  weft --site ~/weft/east org install east.cert`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			c, err := siteClient()
			if err != nil {
				return err
			}
			var v apitype.OrganisationView
			if err := c.json(cmd.Context(), "PUT", "/v1/organisation", apitype.OrganisationRequest{Certificate: string(b)}, &v); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "site %s is in organisation %s\n", v.Site, v.Organisation)
			return nil
		},
	}
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show this site's ID and organisation",
		Example: `  weft --site ~/weft/east org show -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			var v apitype.OrganisationView
			if err := c.json(cmd.Context(), "GET", "/v1/organisation", nil, &v); err != nil {
				return err
			}
			return output(g.stdout, format, v, func(w io.Writer, wide bool) {
				row(w, "SITE", "ORGANISATION")
				row(w, v.Site, orDash(v.Organisation))
			})
		},
	}
	addOutputFlag(show, &format, formatTable, formatJSON, formatYAML)
	leave := &cobra.Command{
		Use:     "leave",
		Short:   "Remove this site's organisation certificate: it is unorganised again",
		Example: `  weft --site ~/weft/east org leave`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			return c.json(cmd.Context(), "DELETE", "/v1/organisation", nil, nil)
		},
	}
	return group(&cobra.Command{
		Use:   "org",
		Short: "Organisations: keys that certify their sites, for address policy across owners",
		Example: `  weft org create acme > acme.key
  weft org certify --org-key acme.key --site SITE-ID > east.cert
  weft --site ~/weft/east org install east.cert`,
	}, create, id, certify, revoke, eventCert, install, show, leave)
}

func newPolicyCmd() *cobra.Command {
	rule := func(verb, flag, short, example, collection string, wrap func(name string, spec resource.AddressRuleSpec) interface{ Default() error }) *cobra.Command {
		var name, format string
		var orgs []string
		cmd := &cobra.Command{
			Use:     verb + " ADDRESS --" + flag + " ORG-ID... [--name NAME]",
			Short:   short,
			Example: example,
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if name == "" {
					name = args[0]
					if resource.ValidateName(name) != nil {
						return fmt.Errorf("%q is no resource name: pass --name NAME", args[0])
					}
				}
				obj := wrap(name, resource.AddressRuleSpec{Address: args[0], Organisations: orgs})
				if err := obj.Default(); err != nil {
					return err
				}
				c, err := siteClient()
				if err != nil {
					return err
				}
				if err := c.json(cmd.Context(), "PUT", "/v1/"+collection+"/"+url.PathEscape(name), obj, obj); err != nil {
					return err
				}
				if format != formatTable {
					return output(g.stdout, format, obj, nil)
				}
				fmt.Fprintf(g.stdout, "%s/%s: %s %sed %s %s\n", verb, name, args[0], verb, flag, strings.Join(orgs, ","))
				return nil
			},
		}
		cmd.Flags().StringSliceVar(&orgs, flag, nil, "organisation IDs (weft org id)")
		cmd.Flags().StringVar(&name, "name", "", "resource name (default: the address)")
		cmd.MarkFlagRequired(flag)
		addOutputFlag(cmd, &format, formatTable, formatJSON, formatYAML)
		return cmd
	}
	export := rule("export", "to", "Let sites of other organisations use an address this site serves (or events it publishes)",
		`  weft --site ~/weft/x1 policy export orders --to 5d41402abc4b2a76b9719d911017c592
  weft --site ~/weft/x1 policy export 'orders.>' --name orders-events --to 5d41402abc4b2a76b9719d911017c592`, "exports",
		func(name string, spec resource.AddressRuleSpec) interface{ Default() error } {
			e := &resource.AddressExport{Spec: spec}
			e.Name = name
			return e
		})
	imp := rule("import", "from", "Let this site's clients use an address that sites of other organisations export to it",
		`  weft --site ~/weft/y1 policy import orders --from 7d793037a0760186574b0282f2f435e7`, "imports",
		func(name string, spec resource.AddressRuleSpec) interface{ Default() error } {
			i := &resource.AddressImport{Spec: spec}
			i.Name = name
			return i
		})
	var format string
	ls := &cobra.Command{
		Use:     "list",
		Aliases: []string{"get", "ls"},
		Short:   "List this site's exports and imports",
		Example: `  weft --site ~/weft/x1 policy list -o yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			var ex apitype.List[resource.AddressExport]
			var im apitype.List[resource.AddressImport]
			if err := c.json(cmd.Context(), "GET", "/v1/exports", nil, &ex); err != nil {
				return err
			}
			if err := c.json(cmd.Context(), "GET", "/v1/imports", nil, &im); err != nil {
				return err
			}
			all := struct {
				Exports []resource.AddressExport `json:"exports"`
				Imports []resource.AddressImport `json:"imports"`
			}{ex.Items, im.Items}
			return output(g.stdout, format, all, func(w io.Writer, wide bool) {
				row(w, "KIND", "NAME", "ADDRESS", "ORGANISATIONS")
				for _, e := range ex.Items {
					row(w, "export", e.Name, e.Spec.Address, strings.Join(e.Spec.Organisations, ","))
				}
				for _, i := range im.Items {
					row(w, "import", i.Name, i.Spec.Address, strings.Join(i.Spec.Organisations, ","))
				}
			})
		},
	}
	addOutputFlag(ls, &format, formatTable, formatJSON, formatYAML)
	del := &cobra.Command{
		Use:       "delete export|import NAME...",
		Aliases:   []string{"rm"},
		Short:     "Delete exports or imports",
		Example:   `  weft --site ~/weft/x1 policy delete export orders`,
		Args:      cobra.MinimumNArgs(2),
		ValidArgs: []string{"export", "import"},
		RunE: func(cmd *cobra.Command, args []string) error {
			collection := map[string]string{"export": "exports", "import": "imports"}[args[0]]
			if collection == "" {
				return fmt.Errorf("%q: say export or import", args[0])
			}
			c, err := siteClient()
			if err != nil {
				return err
			}
			for _, name := range args[1:] {
				if err := c.json(cmd.Context(), "DELETE", "/v1/"+collection+"/"+url.PathEscape(name), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s/%s deleted\n", args[0], name)
			}
			return nil
		},
	}
	return group(&cobra.Command{
		Use:   "policy",
		Short: "Address policy across organisations: exports and imports (also kinds AddressExport, AddressImport for apply -f)",
		Example: `  weft --site ~/weft/x1 policy export orders --to ORG-ID
  weft --site ~/weft/y1 policy import orders --from ORG-ID
  weft --site ~/weft/x1 policy list`,
	}, export, imp, ls, del)
}
