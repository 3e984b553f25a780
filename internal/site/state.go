package site

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/resource"
	"weft.dev/weft/internal/siteid"
)

// Files under a site's data directory. The *.addr files and admin.token are what
// `weft --site DIR` reads to find and authenticate to a running site.
const (
	stateFile      = "state.json"
	caCertFile     = "ca.crt"
	caKeyFile      = "ca.key"
	adminTokenFile = "admin.token"
	adminAddrFile  = "admin.addr"
	linkAddrFile   = "link.addr"
)

// state is everything a site keeps across restarts besides its CA.
type state struct {
	ID     string               `json:"id"`
	Name   string               `json:"name"`
	Tokens *identity.TokenStore `json:"tokens"`
	// Outbound links were made by redeeming another site's token: this site dials.
	Outbound []outboundLink `json:"outbound,omitempty"`
	// Inbound links were made by another site redeeming a token of this one.
	Inbound    []inboundLink        `json:"inbound,omitempty"`
	Listeners  []resource.Listener  `json:"listeners,omitempty"`
	Connectors []resource.Connector `json:"connectors,omitempty"`
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

// loadOrInit reads the site's state and CA from dir, creating them (with a new
// site ID) on first start. A name that differs from the stored one is an error:
// a site's name is part of its identity in its peers' tables.
func loadOrInit(dir, name string, now time.Time) (*state, *identity.CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return initState(dir, name, now)
	case err != nil:
		return nil, nil, err
	}
	st := &state{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, nil, fmt.Errorf("%s: %w (the file is damaged; restore it from a backup or start over with an empty --data)", filepath.Join(dir, stateFile), err)
	}
	if name != "" && name != st.Name {
		return nil, nil, fmt.Errorf("the site in %s is named %q, not %q: use a new --data directory for a new site", dir, st.Name, name)
	}
	if st.Tokens == nil {
		st.Tokens = &identity.TokenStore{}
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, nil, err
	}
	ca, err := identity.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	return st, ca, nil
}

func initState(dir, name string, now time.Time) (*state, *identity.CA, error) {
	if name == "" {
		return nil, nil, errors.New("a new site needs a name: pass --name")
	}
	if err := resource.ValidateName(name); err != nil {
		return nil, nil, err
	}
	id, err := siteid.New()
	if err != nil {
		return nil, nil, err
	}
	ca, err := identity.NewCA(id, name, now)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, caKeyFile), keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, caCertFile), ca.CertPEM(), 0o644); err != nil {
		return nil, nil, err
	}
	st := &state{ID: id.String(), Name: name, Tokens: &identity.TokenStore{}}
	if err := st.save(dir); err != nil {
		return nil, nil, err
	}
	return st, ca, nil
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
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
