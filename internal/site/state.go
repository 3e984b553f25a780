package site

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"weft.dev/weft/internal/datadir"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/resource"
)

// Files under a site's data directory. The *.addr files and admin.token are what
// `weft --site DIR` reads to find and authenticate to a running site.
const (
	stateFile  = "state.json"
	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"
	// siteKeyFile is the Ed25519 identity key the site ID is derived from.
	siteKeyFile = "identity.key"
	// legacyCACertFile is the CA certificate naming the random ID a site
	// had before it moved to a key-derived one; its peers still pin it.
	legacyCACertFile = "ca-legacy.crt"
	adminTokenFile   = "admin.token"
	adminAddrFile    = "admin.addr"
	linkAddrFile     = "link.addr"
)

// state is everything a site keeps across restarts besides its CA.
type state struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// LegacyID is the random ID the site had before it moved to the ID
	// derived from its identity key; links made before still name it.
	LegacyID string `json:"legacyID,omitempty"`
	// Key is the identity public key (hex) once the site has one: a site
	// with a Key whose key file is gone must not make a new one, which
	// would make it another site.
	Key    string               `json:"key,omitempty"`
	Tokens *identity.TokenStore `json:"tokens"`
	// Outbound links were made by redeeming another site's token: this site dials.
	Outbound []outboundLink `json:"outbound,omitempty"`
	// Inbound links were made by another site redeeming a token of this one.
	Inbound   []inboundLink       `json:"inbound,omitempty"`
	Listeners []resource.Listener `json:"listeners,omitempty"`
	// Revocations are the signed statements of revoked sites (base64),
	// kept so a revoked site stays out across restarts.
	Revocations []string             `json:"revocations,omitempty"`
	Connectors  []resource.Connector `json:"connectors,omitempty"`
	// EventCredentials may use the event API (eventauth.go).
	EventCredentials []eventCredential `json:"eventCredentials,omitempty"`
	// OrgCert is this site's organisation certificate (PEM), and Exports
	// and Imports its address policy across organisations (policy.go).
	OrgCert string                   `json:"orgCert,omitempty"`
	Exports []resource.AddressExport `json:"exports,omitempty"`
	Imports []resource.AddressImport `json:"imports,omitempty"`
	// SealRotated is when the last key rotation replaced the seal key
	// that sealPrevFile keeps, while its grace lasts.
	SealRotated *time.Time `json:"sealRotated,omitempty"`
}

type outboundLink struct {
	Name       string   `json:"name"`
	Cost       uint32   `json:"cost"`
	IssuerID   string   `json:"issuerID"`
	IssuerName string   `json:"issuerName"`
	Addresses  []string `json:"addresses"`
	CAPEM      string   `json:"ca"`
	CertPEM    string   `json:"cert"`
	KeyPEM     string   `json:"key"`
	// Refused is why the issuer refused this link for good (it was
	// revoked); such a link is not dialed again.
	Refused string `json:"refused,omitempty"`
}

type inboundLink struct {
	Name     string    `json:"name"`
	PeerID   string    `json:"peerID"`
	PeerName string    `json:"peerName"`
	Serial   string    `json:"serial"`
	Created  time.Time `json:"created"`
}

// keys is what a site proves itself with: its identity key, its CA (whose
// certificate names the key's ID) and, for a site that moved from a random
// ID, the same CA certified under that old ID.
type keys struct {
	site     *identity.SiteKey
	ca       *identity.CA
	legacyCA *identity.CA // nil unless the site has a LegacyID
}

// loadOrInit reads the site's state and keys from dir, creating them (with
// a new identity key, whose hash is the site ID) on first start, and moving
// a site made before identity keys to one (see migrate). A name that
// differs from the stored one is an error: a site's name is part of its
// identity in its peers' tables.
func loadOrInit(dir, name string, now time.Time, log *slog.Logger) (*state, keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, keys{}, err
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return initState(dir, name, now)
	case err != nil:
		return nil, keys{}, err
	}
	st := &state{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, keys{}, fmt.Errorf("%s: %w (the file is damaged; restore it from a backup or start over with an empty --data)", filepath.Join(dir, stateFile), err)
	}
	if name != "" && name != st.Name {
		return nil, keys{}, fmt.Errorf("the site in %s is named %q, not %q: use a new --data directory for a new site", dir, st.Name, name)
	}
	if st.Tokens == nil {
		st.Tokens = &identity.TokenStore{}
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, keys{}, err
	}
	ca, err := loadCA(dir, caCertFile, keyPEM)
	if err != nil {
		return nil, keys{}, err
	}
	k := keys{ca: ca}
	if k.site, err = loadOrNewSiteKey(dir, st.Key == ""); err != nil {
		return nil, keys{}, err
	}
	switch {
	case st.Key != "" && st.Key != hex.EncodeToString(k.site.Public()):
		return nil, keys{}, fmt.Errorf("%s is not the identity key of site %s (%s): restore the site's own key from a backup",
			filepath.Join(dir, siteKeyFile), st.Name, st.ID)
	case st.ID != k.site.ID().String():
		if err := migrate(dir, st, &k, now, log); err != nil {
			return nil, keys{}, fmt.Errorf("moving the site to its key-derived ID: %w (fix the cause and start again: the move resumes)", err)
		}
	}
	if k.ca.Site() != k.site.ID() {
		return nil, keys{}, fmt.Errorf("%s names site %s, but %s is the key of %s: the data directory is damaged; restore it from a backup",
			filepath.Join(dir, caCertFile), k.ca.Site(), filepath.Join(dir, siteKeyFile), k.site.ID())
	}
	if st.LegacyID != "" && k.legacyCA == nil {
		if k.legacyCA, err = loadCA(dir, legacyCACertFile, keyPEM); err != nil {
			return nil, keys{}, err
		}
	}
	return st, k, nil
}

func loadCA(dir, certFile string, keyPEM []byte) (*identity.CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		return nil, err
	}
	ca, err := identity.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, certFile), err)
	}
	return ca, nil
}

// loadOrNewSiteKey reads the identity key, making one if there is none and
// may (a site made before identity keys existed; migrate moves it).
func loadOrNewSiteKey(dir string, may bool) (*identity.SiteKey, error) {
	p := filepath.Join(dir, siteKeyFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		k, err := identity.ParseSiteKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (restore it from a backup: the site ID is its hash)", p, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	case !may:
		return nil, fmt.Errorf("%s is missing: restore it from a backup (the site ID is its hash; a new key would make a new site)", p)
	}
	k, err := identity.NewSiteKey()
	if err != nil {
		return nil, err
	}
	return k, saveSiteKey(dir, k)
}

func saveSiteKey(dir string, k *identity.SiteKey) error {
	b, err := k.PEM()
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, siteKeyFile), b, 0o600)
}

// migrate moves a site made before identity keys from its random ID to the
// one its new key derives: the CA (same key, same subject) is certified
// anew under the new ID, and the old certificate is kept to present to
// peers that still ask for the old ID (identity.ServeLegacyID). Links made
// before keep working: their credentials chain to the same CA key, and the
// link hello proves the identity key, from which peers take the new ID.
// Each step can be repeated, so a crash midway resumes at the next start.
func migrate(dir string, st *state, k *keys, now time.Time, log *slog.Logger) error {
	legacy := st.ID
	if k.ca.Site().String() == legacy {
		if _, err := os.Stat(filepath.Join(dir, legacyCACertFile)); errors.Is(err, fs.ErrNotExist) {
			if err := writeFileAtomic(filepath.Join(dir, legacyCACertFile), k.ca.CertPEM(), 0o644); err != nil {
				return err
			}
		}
		k.legacyCA = k.ca
	}
	next, err := k.ca.Recertify(k.site.ID(), now)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, caCertFile), next.CertPEM(), 0o644); err != nil {
		return err
	}
	k.ca = next
	st.LegacyID, st.ID, st.Key = legacy, k.site.ID().String(), hex.EncodeToString(k.site.Public())
	if err := st.save(dir); err != nil {
		return err
	}
	log.Warn("site moved to the ID derived from its identity key; links made before keep working", "legacyID", legacy, "id", st.ID, "key", filepath.Join(dir, siteKeyFile))
	return nil
}

func initState(dir, name string, now time.Time) (*state, keys, error) {
	if name == "" {
		return nil, keys{}, errors.New("a new site needs a name: pass --name")
	}
	if err := resource.ValidateName(name); err != nil {
		return nil, keys{}, err
	}
	sk, err := identity.NewSiteKey()
	if err != nil {
		return nil, keys{}, err
	}
	if err := saveSiteKey(dir, sk); err != nil {
		return nil, keys{}, err
	}
	ca, err := identity.NewCA(sk.ID(), name, now)
	if err != nil {
		return nil, keys{}, err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return nil, keys{}, err
	}
	if err := writeFileAtomic(filepath.Join(dir, caKeyFile), keyPEM, 0o600); err != nil {
		return nil, keys{}, err
	}
	if err := writeFileAtomic(filepath.Join(dir, caCertFile), ca.CertPEM(), 0o644); err != nil {
		return nil, keys{}, err
	}
	st := &state{ID: sk.ID().String(), Name: name, Key: hex.EncodeToString(sk.Public()), Tokens: &identity.TokenStore{}}
	if err := st.save(dir); err != nil {
		return nil, keys{}, err
	}
	return st, keys{site: sk, ca: ca}, nil
}

func (st *state) save(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, stateFile), b, 0o600)
}

// clone is a deep copy, made through the same encoding as the file so that
// nothing (the token store least of all) is shared with the original.
func (st *state) clone() (*state, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	next := &state{}
	if err := json.Unmarshal(b, next); err != nil {
		return nil, err
	}
	if next.Tokens == nil {
		next.Tokens = &identity.TokenStore{}
	}
	return next, nil
}

// ErrNotSaved wraps the reason a change could not be written to the data
// directory; the change was then not made.
var ErrNotSaved = errors.New("the change was not made: the site could not save its state")

// commit makes a durable change to the site's state: change edits a copy, the
// copy is written and fsynced, and only then does it become the state every
// reader sees. A change that returns an error, or whose save fails, is not
// made, so an acknowledged change is never lost to a restart. Writers queue
// on saveMu; no other lock is held while the file is written, so the data
// path never waits for a disk.
func (s *Site) commit(change func(st *state) error) error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	next, err := s.state().clone()
	if err != nil {
		return err
	}
	if err := change(next); err != nil {
		return err
	}
	if err := next.save(s.opts.DataDir); err != nil {
		s.log.Error("cannot save site state; the change was not made", "err", err)
		return fmt.Errorf("%w: %w (check the data directory's disk space and permissions)", ErrNotSaved, err)
	}
	if p := s.opts.Persist; p != nil {
		if err := p(); err != nil {
			s.log.Error("cannot copy site state to its store; the change was not made", "err", err)
			return fmt.Errorf("%w: %w", ErrNotSaved, err)
		}
	}
	s.st.Store(next)
	return nil
}

// purgeTokens forgets tokens long expired, saving only when there were any.
func (s *Site) purgeTokens(now time.Time) error {
	if s.state().Tokens.Purgeable(now) == 0 {
		return nil
	}
	return s.commit(func(st *state) error {
		st.Tokens.Purge(now)
		return nil
	})
}

// adminToken returns the admin API credential, made on first start.
func adminToken(dir string) (string, error) {
	p := filepath.Join(dir, adminTokenFile)
	b, err := os.ReadFile(p)
	if err == nil && len(b) > 0 {
		return string(b), nil
	}
	if !errors.Is(err, fs.ErrNotExist) && err != nil {
		return "", err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw[:])
	return tok, writeFileAtomic(p, []byte(tok), 0o600)
}

// writeFileAtomic replaces a file so that a crash leaves the old or the new
// contents, never a torn mix.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	return datadir.WriteFile(path, b, mode)
}
