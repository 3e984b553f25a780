package identity

import (
	"net/url"

	"weft.dev/weft/internal/siteid"
)

// SiteURI returns weft://site/<hex>, the SAN that binds a certificate to id.
func SiteURI(id siteid.ID) *url.URL {
	return &url.URL{Scheme: uriScheme, Host: uriHost, Path: "/" + id.String()}
}

const (
	uriScheme = "weft"
	uriHost   = "site"
)

// truncate keeps hostile input from bloating error messages and logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
