package apitype

// OrganisationRequest is the body of PUT /v1/organisation: the certificate
// `weft org certify` made for this site.
type OrganisationRequest struct {
	Certificate string `json:"certificate"`
}

// OrganisationView is GET /v1/organisation: the site and the organisation
// its certificate names (empty: none, the site is unorganised).
type OrganisationView struct {
	Site         string `json:"site"`
	Organisation string `json:"organisation,omitempty"`
}
