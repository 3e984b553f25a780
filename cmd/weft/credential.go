package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"weft.dev/weft/internal/apitype"
)

var credentialKind = kind[apitype.EventCredentialView]{
	name: "credential", collection: "event-credentials",
	itemName: func(c apitype.EventCredentialView) string { return c.Name },
	header: func(wide bool) []any {
		h := []any{"NAME", "STATE", "PUBLISH", "SUBSCRIBE", "EXPIRES"}
		if wide {
			h = append(h, "CREATED")
		}
		return h
	},
	row: func(c apitype.EventCredentialView, wide bool) []any {
		exp := "never"
		if c.Expires != nil {
			exp = c.Expires.Local().Format(time.DateTime)
		}
		r := []any{c.Name, c.State, orDash(strings.Join(c.Publish, ",")), orDash(strings.Join(c.Subscribe, ",")), exp}
		if wide {
			r = append(r, c.Created.Local().Format(time.DateTime))
		}
		return r
	},
}

func newCredentialCmd() *cobra.Command {
	var (
		req     apitype.EventCredentialRequest
		expires time.Duration
		format  string
		certDir string
	)
	create := &cobra.Command{
		Use:   "create NAME [--publish PATTERN]... [--subscribe PATTERN]... [--expires DURATION]",
		Short: "Create a credential for the event API; its secret is printed once",
		Long: `Create a bearer credential for this site's event API, allowed to publish to the
subjects its --publish patterns cover and to subscribe to (or consume) what its
--subscribe patterns cover ('*' one token, '>' the rest). The secret goes to
stdout and is shown only now: the site keeps its hash. Clients pass it with
'weft publish|subscribe --credential SECRET' (or WEFT_EVENTS_CREDENTIAL), or
as the header 'Authorization: Bearer SECRET'.

With --cert the credential is a TLS client certificate from the site's CA
instead: NAME.crt, NAME.key and NAME-ca.crt (the CA the event port's
certificate chains to) are written to --cert-dir. A client presenting the
certificate over TLS on the event port (https://, same port) gets the
credential's permissions; deleting the credential refuses the certificate.

With --organisation the credential stands for the client certificates that the
site's organisation issues for NAME ('weft org event-cert --credential NAME'):
one certificate works at every site of the organisation that has a credential
NAME, with that site's permissions for it.`,
		Example: `  weft --site ~/weft/east credential create shop --publish 'orders.>' > shop.cred
  weft --site ~/weft/east credential create shop-tls --publish 'orders.>' --cert --cert-dir ./tls
  weft --site ~/weft/east credential create audit --subscribe 'orders.*' --subscribe jobs --expires 720h
  weft --site ~/weft/east credential create shop-org --publish 'orders.>' --organisation`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := siteClient()
			if err != nil {
				return err
			}
			req.Name = args[0]
			if expires > 0 {
				req.Expires = expires.String()
			}
			var got apitype.EventCredentialCreated
			if err := c.json(cmd.Context(), "POST", "/v1/event-credentials", req, &got); err != nil {
				return err
			}
			if format != formatTable {
				return output(g.stdout, format, got, nil)
			}
			switch {
			case req.Cert:
				return writeCredentialCert(certDir, got)
			case req.Organisation:
				fmt.Fprintf(g.stderr, "credential/%s created: clients present a certificate of organisation %s for it ('weft org event-cert --credential %s')\n", got.Name, got.Organisation, got.Name)
				return nil
			}
			fmt.Fprintln(g.stdout, got.Secret)
			fmt.Fprintf(g.stderr, "credential/%s created: its secret (above) is shown only now; pass it with --credential or WEFT_EVENTS_CREDENTIAL\n", got.Name)
			return nil
		},
	}
	f := create.Flags()
	f.StringArrayVar(&req.Publish, "publish", nil, "a topic or queue pattern the credential may publish to (repeatable)")
	f.StringArrayVar(&req.Subscribe, "subscribe", nil, "a topic pattern or queue the credential may subscribe to (repeatable)")
	f.DurationVar(&expires, "expires", 0, "how long the credential is valid (default: until deleted)")
	f.BoolVar(&req.Cert, "cert", false, "make a TLS client certificate and key instead of a bearer secret")
	f.StringVar(&certDir, "cert-dir", ".", "with --cert: where NAME.crt, NAME.key and NAME-ca.crt are written")
	f.BoolVar(&req.Organisation, "organisation", false, "stand for the client certificates that the site's organisation issues for NAME (weft org event-cert)")
	create.MarkFlagsMutuallyExclusive("cert", "organisation")
	create.MarkFlagsOneRequired("publish", "subscribe")
	addOutputFlag(create, &format, formatTable, formatJSON, formatYAML)
	return group(&cobra.Command{
		Use:   "credential",
		Short: "Credentials that let clients publish and subscribe at this site's event API",
		Example: `  weft --site ~/weft/east credential create shop --publish 'orders.>'
  weft --site ~/weft/east credential list
  weft --site ~/weft/east credential delete shop`,
	}, create,
		listCmd(credentialKind, `  weft --site ~/weft/east credential list -o wide`),
		deleteCmd(credentialKind, "Delete credentials: requests with them are refused from then on", `  weft --site ~/weft/east credential delete shop`))
}

// addCredentialFlag adds --credential, the event API credential of publish
// and subscribe, into p: the secret, or @FILE to read it from a file.
func addCredentialFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "credential", os.Getenv("WEFT_EVENTS_CREDENTIAL"),
		"event API credential (from weft credential create): the secret or @FILE (env WEFT_EVENTS_CREDENTIAL); needed where the event API listens beyond loopback")
}

// authorization is the Authorization header for credential (the flag's
// value), or "" without one.
func authorization(credential string) (string, error) {
	if file, ok := strings.CutPrefix(credential, "@"); ok {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--credential: %w", err)
		}
		credential = string(b)
	}
	if credential = strings.TrimSpace(credential); credential == "" {
		return "", nil
	}
	if strings.ContainsFunc(credential, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return "", errors.New("--credential: a secret is one word of printable ASCII, as `weft credential create` prints it; check the file or variable it came from")
	}
	return "Bearer " + credential, nil
}

// writeCredentialCert writes a certificate credential's files; the key is
// readable by its owner only.
func writeCredentialCert(dir string, got apitype.EventCredentialCreated) error {
	for _, f := range []struct {
		name, body string
		mode       os.FileMode
	}{
		{got.Name + ".key", got.KeyPEM, 0o600},
		{got.Name + ".crt", got.CertPEM, 0o644},
		{got.Name + "-ca.crt", got.CAPEM, 0o644},
	} {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			return fmt.Errorf("credential %s was made, but its files were not written (delete it and try again): %w", got.Name, err)
		}
		fmt.Fprintln(g.stdout, p)
	}
	fmt.Fprintf(g.stderr, "credential/%s created: present %s.crt and %s.key over TLS to the event port; the key is shown only now\n", got.Name, got.Name, got.Name)
	return nil
}
