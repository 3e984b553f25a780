package site

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/seal"
)

// Rotating the keys of the transit and of the egress site of a stream
// keeps it flowing and keeps the links' sessions: a stream a -> b -> c
// carries lines across both rotations; a's table then holds c's record
// signed by c's new operational key; a new stream is sealed to c's new
// seal key; and once the old operational keys are revoked, a record signed
// by one (as by someone who stole it) is refused and counted.
func TestKeyRotationKeepsStreams(t *testing.T) {
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	linkSites(t, a, b)
	linkSites(t, b, c)
	conn, r := openStream(t, a, c)
	echo(t, conn, r, "before")
	sessAB, sessBC := a.liveOutbound("b"), b.liveOutbound("c")
	oldB, oldC := b.op.Load(), c.op.Load()
	oldRec, _ := a.record(c.ID())

	for _, s := range []*testSite{b, c} {
		var got apitype.KeyRotation
		if code, _ := s.api("POST", "/v1/site/rotate-key", apitype.KeyRotationRequest{RevokePrevious: true}, &got); code != 200 || !got.Revoked || got.Site != s.ID().String() {
			t.Fatalf("rotate-key at %s: %d %+v", s.name, code, got)
		}
		echo(t, conn, r, "after rotating "+s.name)
	}
	if c.ID() != c.op.Load().Site() || bytes.Equal(c.op.Load().Public(), oldC.Public()) {
		t.Fatal("c's operational key did not change, or its site did")
	}
	waitFor(t, "a to hold c's record signed by its new key", func() bool {
		rec, ok := a.record(c.ID())
		return ok && bytes.Equal(rec.Key[:], c.op.Load().Public()) && rec.Verify(time.Now()) == nil &&
			rec.SealKey == c.sealKeyNow().Public && rec.PrevSealKey != ([routing.SealKeyLen]byte{})
	})
	waitFor(t, "a to take both revocations", func() bool { return a.keyRevoked(oldB.Public()) && a.keyRevoked(oldC.Public()) })
	if a.liveOutbound("b") != sessAB || b.liveOutbound("c") != sessBC {
		t.Fatal("a link session was replaced: the rotation dropped it")
	}
	echo(t, conn, r, "after both revocations")

	// A new stream: sealed to c's new seal key.
	conn2, r2 := dialListener(t, a)
	echo(t, conn2, r2, "new stream")

	// Someone holding c's old operational key signs a newer record.
	forged := oldRec
	forged.Seq += 1 << 30
	forged.Connectors = nil
	forged.SignOp(oldC)
	before := a.rejected(rejectRevokedKey)
	b.sendRaw(a.ID(), forged)
	waitFor(t, "a to refuse the record of a revoked key", func() bool { return a.rejected(rejectRevokedKey) > before })
	if rec, _ := a.record(c.ID()); len(rec.Connectors) == 0 {
		t.Fatal("a took the forged record")
	}
}

// sealKeyNow is the site's current seal key.
func (s *Site) sealKeyNow() seal.Key {
	s.rotMu.Lock()
	defer s.rotMu.Unlock()
	return s.sealKey
}

// A data directory from before operational keys (no operational.key)
// keeps its site ID: the site makes its first operational key on start;
// one due for rotation is replaced with the next serial on start too.
func TestOperationalKeyMigration(t *testing.T) {
	dir := t.TempDir()
	s := startSiteIn(t, "m", dir)
	id := s.ID()
	s.stop()
	must(t, os.Remove(filepath.Join(dir, opKeyFile)))
	s = startSiteIn(t, "m", dir)
	if s.ID() != id || s.op.Load().Site() != id {
		t.Fatalf("the site moved from %s to %s", id, s.ID())
	}
	serial := s.op.Load().Cert().Serial
	s.stop()
	none := func([]byte) bool { return false }
	op, err := loadOrNewOpKey(dir, s.key, time.Now().Add(defaultOpKeyLife), defaultOpKeyLife, none)
	must(t, err)
	if op.Cert().Serial != serial+1 {
		t.Fatalf("a due key was not replaced: serial %d, was %d", op.Cert().Serial, serial)
	}
	again, err := loadOrNewOpKey(dir, s.key, time.Now(), defaultOpKeyLife, none)
	must(t, err)
	if !again.Public().Equal(op.Public()) {
		t.Fatal("a good key was replaced")
	}
	revoked, err := loadOrNewOpKey(dir, s.key, time.Now(), defaultOpKeyLife, func(k []byte) bool { return op.Public().Equal(ed25519.PublicKey(k)) })
	must(t, err)
	if revoked.Public().Equal(op.Public()) || revoked.Cert().Serial != serial+2 {
		t.Fatal("a revoked key was kept")
	}
}
