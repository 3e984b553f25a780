package site

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/policy"
	"weft.dev/weft/internal/revocation"
	"weft.dev/weft/internal/siteid"
)

// rejectRevocation labels a revocation statement that does not check.
const rejectRevocation = "bad-revocation"

// rejectRevoked labels a record of a revoked site.
const rejectRevoked = "revoked"

// orgAuthority decides which organisation keys may revoke a site: the key
// of the organisation whose certificate the site carries in its signed
// record, as this site's table knows it. An organisation key can certify
// any site, so a certificate alone would let it revoke the sites of
// others: only the membership the site itself announced counts. A site
// that never had the revoked site's record therefore refuses the statement
// (counted), but it gets no record of that site from sites that took it.
func (s *Site) orgAuthority(site siteid.ID, orgKey []byte) error {
	m, ok := (*s.pol.members.Load())[site]
	org := policy.OrgIDOf(orgKey)
	switch {
	case !ok:
		return fmt.Errorf("site %s is not in this site's table, so its organisation is not known here", site)
	case m.Org != org:
		return fmt.Errorf("site %s is not a member of organisation %s (it announces %s)", site, org, orgString(m.Org))
	}
	return nil
}

// checkedBefore is the authority for statements this site saved: it
// checked them when it took them, when the revoked site's record was at
// hand.
func checkedBefore(siteid.ID, []byte) error { return nil }

// loadRevocations checks the revocations kept in the state, for New.
func (s *Site) loadRevocations(st *state) error {
	s.revoked, s.revokedKeys = map[siteid.ID][]byte{}, map[[32]byte][]byte{}
	for i, text := range st.Revocations {
		stmt, b, err := decodeRevocation(text, checkedBefore)
		if err != nil {
			return fmt.Errorf("%s: revocation %d: %w (the file is damaged; restore it from a backup)", stateFile, i, err)
		}
		if stmt.Kind == revocation.OperationalKey {
			s.revokedKeys[stmt.Revoked] = b
			s.router.RevokeKey(stmt.Revoked)
			continue
		}
		s.revoked[stmt.Site] = b
		s.router.Revoke(stmt.Site)
		if stmt.Site == s.id {
			s.log.Error("this site is revoked: every other site refuses it; make a new site with a new --data directory", "reason", stmt.Reason)
		}
	}
	return nil
}

func decodeRevocation(text string, org revocation.Authority) (revocation.Statement, []byte, error) {
	var stmt revocation.Statement
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return stmt, nil, fmt.Errorf("%w: not base64: %w", revocation.ErrInvalid, err)
	}
	if err := stmt.UnmarshalBinary(b); err != nil {
		return stmt, nil, err
	}
	if err := stmt.Verify(org); err != nil {
		return stmt, nil, err
	}
	return stmt, b, nil
}

// isRevoked reports whether site was revoked.
func (s *Site) isRevoked(site siteid.ID) bool {
	s.revMu.Lock()
	defer s.revMu.Unlock()
	_, ok := s.revoked[site]
	return ok
}

// revocations returns every statement held, for a new neighbour.
func (s *Site) revocations() [][]byte {
	s.revMu.Lock()
	defer s.revMu.Unlock()
	out := make([][]byte, 0, len(s.revoked)+len(s.revokedKeys))
	for _, b := range s.revoked {
		out = append(out, b)
	}
	for _, b := range s.revokedKeys {
		out = append(out, b)
	}
	return out
}

// takeRevocation handles a statement a neighbour sent.
func (s *Site) takeRevocation(pc *peerConn, b []byte) {
	var stmt revocation.Statement
	err := stmt.UnmarshalBinary(b)
	if err == nil {
		err = stmt.Verify(s.orgAuthority)
	}
	if err != nil {
		s.metrics.RecordsRejected.WithLabelValues(rejectRevocation).Inc()
		s.log.Warn("revocation refused: dropped", "link", pc.linkName, "peer", pc.peerName, "err", err)
		return
	}
	s.revoke(stmt, b, pc)
}

// revoke applies a checked statement: the site is refused from now on, the
// router drops it from every table, links to it close, every other
// neighbour gets the statement, and it is saved. A statement of an
// operational key makes what that key signs refused, and closes the links
// it still proves (a site that rotated proved its new key on them). A
// statement already held is ignored, so flooding ends. from is the session
// it came on, nil if it was made or added here.
func (s *Site) revoke(stmt revocation.Statement, b []byte, from *peerConn) bool {
	byKey := stmt.Kind == revocation.OperationalKey
	s.revMu.Lock()
	var known bool
	if byKey {
		if _, known = s.revokedKeys[stmt.Revoked]; !known {
			s.revokedKeys[stmt.Revoked] = b
		}
	} else if _, known = s.revoked[stmt.Site]; !known {
		s.revoked[stmt.Site] = b
	}
	s.revMu.Unlock()
	if known {
		return false
	}
	closes := func(pc *peerConn) bool { return pc.peer == stmt.Site && stmt.Site != s.id }
	if byKey {
		s.log.Warn("operational key revoked: what it signs is refused from now on", "site", stmt.Site.String(), "key", hex.EncodeToString(stmt.Revoked[:]), "reason", stmt.Reason)
		closes = func(pc *peerConn) bool { return signedByRevokedKey(pc, stmt.Revoked[:]) }
		// Every table drops the records the key signed, and with them the
		// site's links, connectors and interests, until the site signs a
		// new one with another key.
		s.feedRouter(routerInput{kind: inputRevokeKey, key: stmt.Revoked})
		switch {
		case stmt.Site != s.id:
		case bytes.Equal(s.op.Load().Public(), stmt.Revoked[:]):
			s.goFunc(func() {
				if _, err := s.RotateKey(false); err != nil {
					s.log.Error("this site's operational key is revoked and it cannot rotate to a new one: its records are refused; restart it", "err", err)
				}
			})
		default:
			// An older key of this site: tables that held a record it
			// signed (a copy someone made with the stolen key, say) now
			// hold none of this site; a new one fills the gap.
			s.announce()
		}
	} else {
		s.log.Warn("site revoked: removed from every table and refused from now on", "revoked", stmt.Site.String(), "reason", stmt.Reason)
		s.feedRouter(routerInput{peer: stmt.Site, kind: inputRevoke})
	}
	all := s.allPeers()
	msg := append([]byte{ctlRevoke}, b...)
	// Sending and saving may wait: not on the read loop of the session it
	// came on.
	s.goFunc(func() {
		for _, pc := range all {
			switch {
			case closes(pc):
				// The statement first: a site whose current key is
				// revoked learns it only so, rotates, and is taken back.
				if pc != from {
					pc.sess.SendControl(msg)
				}
				pc.sess.CloseWithError(errors.New("the peer site, or the operational key that proved it, is revoked"))
			case pc == from:
			default:
				pc.sess.SendControl(msg)
			}
		}
		err := s.commit(func(st *state) error {
			st.Revocations = append(st.Revocations, base64.StdEncoding.EncodeToString(b))
			return nil
		})
		if err != nil {
			s.log.Error("cannot save a revocation; it holds until a restart, and comes back from any neighbour that has it", "revoked", stmt.Site.String(), "err", err)
		}
	})
	return true
}

// Revocations lists the revoked sites this site knows of.
func (s *Site) Revocations() []apitype.Revocation {
	var out []apitype.Revocation
	for _, b := range s.revocations() {
		var stmt revocation.Statement
		if stmt.UnmarshalBinary(b) == nil {
			out = append(out, revocationView(stmt, b))
		}
	}
	slices.SortFunc(out, func(a, b apitype.Revocation) int { return a.Issued.Compare(b.Issued) })
	return out
}

func revocationView(stmt revocation.Statement, b []byte) apitype.Revocation {
	v := apitype.Revocation{Site: stmt.Site.String(), Kind: "site", Issued: time.Unix(stmt.Issued, 0).UTC(), Reason: stmt.Reason,
		Statement: base64.StdEncoding.EncodeToString(b)}
	switch stmt.Kind {
	case revocation.ByOrganisation:
		v.Kind = "organisation"
	case revocation.OperationalKey:
		v.Kind, v.Key = "operational-key", hex.EncodeToString(stmt.Revoked[:])
	}
	return v
}

// Revoke adds a revocation: a statement made elsewhere, or, with an empty
// statement, one of this very site by its own identity key. The statement
// floods to every site linked to this one, directly or not.
func (s *Site) Revoke(statement, reason string) (apitype.Revocation, error) {
	var (
		stmt revocation.Statement
		b    []byte
		err  error
	)
	if statement != "" {
		stmt, b, err = decodeRevocation(statement, s.orgAuthority)
	} else {
		stmt, err = revocation.New(revocation.BySite, s.id, s.key.Private(), time.Now().Unix(), reason)
		if err == nil {
			b, err = stmt.MarshalBinary()
		}
	}
	if err != nil {
		return apitype.Revocation{}, errInvalid(err)
	}
	if !s.revoke(stmt, b, nil) {
		return apitype.Revocation{}, &apiError{Code: apitype.CodeAlreadyExists, Message: fmt.Sprintf("site %s (or this key of it) is already revoked: see `weft revocation list`", stmt.Site)}
	}
	if stmt.Site == s.id && stmt.Kind != revocation.OperationalKey {
		s.log.Error("this site revoked itself: every other site refuses it from now on; make a new site with a new --data directory", "reason", stmt.Reason)
	}
	return revocationView(stmt, b), nil
}

func (s *Site) apiRevoke(w http.ResponseWriter, r *http.Request) (any, error) {
	var req apitype.RevocationRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	switch {
	case req.Statement == "" && !req.Self:
		return nil, errInvalid(errors.New(`no statement: give "statement" (from 'weft revocation create -o yaml' at the revoked site) to add it, or "self": true to revoke this very site, for good`))
	case req.Statement != "" && req.Self:
		return nil, errInvalid(errors.New(`both "statement" and "self": give one, a statement to add or self to revoke this site`))
	}
	return s.Revoke(req.Statement, req.Reason)
}
