package site

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/identity"
	"weft.dev/weft/internal/opkey"
	"weft.dev/weft/internal/revocation"
	"weft.dev/weft/internal/seal"
)

// opKeyFile keeps the site's operational key and its certificate (package
// opkey): it signs the site's records and link proofs, while identity.key,
// whose hash is the site ID, only certifies it. A data directory from
// before operational keys has none; the site makes one on start and keeps
// its ID.
const opKeyFile = "operational.key"

// Defaults of Options.OpKeyLife, Options.SealKeySwitch and
// Options.SealKeyGrace.
const (
	defaultOpKeyLife     = 30 * 24 * time.Hour
	defaultSealKeySwitch = 10 * time.Second
	defaultSealKeyGrace  = time.Hour
)

// loadOrNewOpKey reads the operational key, making a new one (with the
// next serial) when there is none, a third of its life or less is left,
// or it is revoked (a key file restored from a backup).
func loadOrNewOpKey(dir string, id *identity.SiteKey, now time.Time, life time.Duration, revoked func([]byte) bool) (*opkey.Signer, error) {
	p := filepath.Join(dir, opKeyFile)
	var serial uint64
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		op, err := opkey.Parse(b, id.Public())
		if err != nil {
			return nil, fmt.Errorf("%s: %w (remove it: the site makes a new one and keeps its ID)", p, err)
		}
		c := op.Cert()
		if !opKeyDue(&c, now) && !revoked(op.Public()) {
			return op, nil
		}
		serial = c.Serial
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	op, err := opkey.New(id.Private(), serial+1, now, life)
	if err != nil {
		return nil, err
	}
	return op, saveOpKey(dir, op)
}

func saveOpKey(dir string, op *opkey.Signer) error {
	b, err := op.PEM()
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, opKeyFile), b, 0o600)
}

// opKeyDue says whether an operational key should be replaced: a third of
// its certificate's life or less is left, as for link certificates.
func opKeyDue(c *opkey.Cert, now time.Time) bool { return c.Age(now) >= 2.0/3 }

// RotateKey replaces the site's operational key with a new one its
// identity key certifies, and its seal key with a new one, and floods a
// record signed by the new key that advertises the new seal key (and the
// old one as previous). The site ID stays. Nothing established is
// dropped: each live link gets a proof by the new key (ctlReprove), seal
// sessions made before keep their keys until they rekey, handshakes to the
// old seal key are still answered for Options.SealKeyGrace, restarts
// included (sealPrevFile), and this site's own new handshakes move to the
// new seal key after Options.SealKeySwitch, once its peers have the
// record. With revokePrevious the old operational key is revoked
// too (after the links were re-proved, so they stay up).
func (s *Site) RotateKey(revokePrevious bool) (apitype.KeyRotation, error) {
	s.rotMu.Lock()
	defer s.rotMu.Unlock()
	now := time.Now()
	old := s.op.Load()
	next, err := opkey.New(s.key.Private(), old.Cert().Serial+1, now, s.opts.OpKeyLife)
	if err != nil {
		return apitype.KeyRotation{}, err
	}
	sealKey, err := seal.GenerateKey(nil)
	if err != nil {
		return apitype.KeyRotation{}, err
	}
	prevSeal := s.sealKey
	// The previous seal key first: a failure here leaves every key as it was.
	if err := writeFileAtomic(filepath.Join(s.opts.DataDir, sealPrevFile), prevSeal.Private[:], 0o600); err != nil {
		return apitype.KeyRotation{}, fmt.Errorf("saving the previous seal key: %w; the site keeps its keys", err)
	}
	if err := saveOpKey(s.opts.DataDir, next); err != nil {
		return apitype.KeyRotation{}, fmt.Errorf("saving the new operational key: %w; the site keeps the old one", err)
	}
	if err := writeFileAtomic(filepath.Join(s.opts.DataDir, sealKeyFile), sealKey.Private[:], 0o600); err != nil {
		return apitype.KeyRotation{}, fmt.Errorf("saving the new seal key: %w; the site keeps the old one (its operational key is new)", err)
	}
	// Kubernetes mode copies the data directory's files to its Secret on
	// each saved change: this is one.
	err = s.commit(func(st *state) error {
		rotated := now.UTC()
		st.SealRotated = &rotated
		return nil
	})
	if err != nil {
		s.log.Error("the new keys are saved in the data directory but not copied to the state store; a restart there makes new ones, and a restart here forgets the previous seal key", "err", err)
	}
	s.sealKey = sealKey
	s.op.Store(next)
	s.sealIn.SetKey(sealKey)
	s.feedRouter(routerInput{kind: inputKeys, op: next, seal: sealKey.Public, prevSeal: prevSeal.Public})
	s.reproveLinks(next)
	s.scheduleSealKeys(sealKey, now)
	c := next.Cert()
	out := apitype.KeyRotation{Site: s.id.String(), Serial: c.Serial, Key: hex.EncodeToString(next.Public()),
		NotAfter: time.Unix(c.NotAfter, 0).UTC(), SealKey: hex.EncodeToString(sealKey.Public[:]), Previous: hex.EncodeToString(old.Public())}
	s.log.Info("operational and seal keys rotated; the site ID stays", "serial", c.Serial, "key", out.Key, "previous", out.Previous)
	if !revokePrevious {
		return out, nil
	}
	stmt, err := revocation.NewKey(s.key.Private(), old.Public(), now.Unix(), "replaced by weft site rotate-key --revoke-previous")
	if err != nil {
		return out, err
	}
	b, err := stmt.MarshalBinary()
	if err != nil {
		return out, err
	}
	s.revoke(stmt, b, nil)
	out.Revoked, out.Statement = true, base64.StdEncoding.EncodeToString(b)
	return out, nil
}

// reproveLinks proves op on every live link session.
func (s *Site) reproveLinks(op *opkey.Signer) {
	for _, pc := range s.allPeers() {
		pc.mu.Lock()
		msg := pc.hs.reprove(op)
		pc.mu.Unlock()
		pc.sess.SendControl(msg)
	}
}

// allPeers is every live link session.
func (s *Site) allPeers() []*peerConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*peerConn
	for _, pcs := range s.peers {
		all = append(all, pcs...)
	}
	return all
}

// rotateKeyDue rotates the operational key when a third of its life is
// left.
func (s *Site) rotateKeyDue(now time.Time) {
	c := s.op.Load().Cert()
	if !opKeyDue(&c, now) {
		return
	}
	if _, err := s.RotateKey(false); err != nil {
		s.log.Error("cannot rotate the operational key; retrying", "err", err)
	}
}

// keyRevoked says whether the operational key key was revoked.
func (s *Site) keyRevoked(key []byte) bool {
	if len(key) != len(revocation.Statement{}.Revoked) {
		return false
	}
	s.revMu.Lock()
	defer s.revMu.Unlock()
	_, ok := s.revokedKeys[[32]byte(key)]
	return ok
}

// signedByRevokedKey says whether a peer session was proven by key.
func signedByRevokedKey(pc *peerConn, key []byte) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return bytes.Equal(pc.hs.signer, key)
}

func (s *Site) apiRotateKey(w http.ResponseWriter, r *http.Request) (any, error) {
	var req apitype.KeyRotationRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.RotateKey(req.RevokePrevious)
}
