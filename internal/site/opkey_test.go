package site

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/routing"
	"weft.dev/weft/internal/seal"
	"weft.dev/weft/internal/siteid"
)

// Rotating the keys of the transit and of the egress site of a stream
// keeps it flowing and keeps the links' sessions: a stream a -> b -> c
// carries lines across both rotations; a's table then holds c's record
// signed by c's new operational key; a new stream is sealed to c's new
// seal key; and once the old operational keys are revoked, a record signed
// by one (as by someone who stole it) is refused and counted.
func TestKeyRotationKeepsStreams(t *testing.T) {
	a, b, c := startLine(t)
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

// openSealed carries one line from a through a stream sealed to c's seal
// key key, as a peer that holds a record of c advertising key does, to the
// echo connector at c.
func openSealed(a, c *testSite, key [seal.KeyLen]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := seal.NewInitiator(seal.Config{Self: a.ID(), Key: a.sealKeyNow(), Logger: a.Site.log})
	h := forward.NewHeader(forward.KindTCP, "echo", a.ID(), []siteid.ID{c.ID()})
	conn, err := in.Open(ctx, h, key, func(ctx context.Context, h *forward.Header) (seal.Stream, error) {
		return a.OpenStream(ctx, h)
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "sealed\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err == nil && got != "sealed\n" {
		err = fmt.Errorf("echo: got %q", got)
	}
	return err
}

// A site that rotated its keys and restarted still answers seal handshakes
// made with the seal key it replaced, as a peer that holds its record from
// before the rotation makes them, and still advertises that key as its
// previous one, until the grace is over: a restart after it refuses them,
// advertises no previous key and removes the key's file.
func TestPrevSealKeySurvivesRestart(t *testing.T) {
	a, c := startSite(t, "a"), startSite(t, "c")
	linkSites(t, a, c)
	conn, r := openStream(t, a, c)
	echo(t, conn, r, "before")
	old := c.sealKeyNow()
	if _, err := c.RotateKey(false); err != nil {
		t.Fatal(err)
	}
	restart := func(opts Options) {
		t.Helper()
		c.stop()
		opts.Name, opts.DataDir = "c", c.dir
		c = startSiteWith(t, opts)
		waitFor(t, "a and c to hold each other's records after c's restart", func() bool {
			rec, ok := a.record(c.ID())
			_, known := c.Table().SealKey(a.ID())
			return ok && rec.SealKey == c.sealKeyNow().Public && known && len(a.Table().Candidates("echo")) == 1
		})
	}
	restart(Options{})
	if rec, _ := a.record(c.ID()); rec.PrevSealKey != old.Public {
		t.Error("after the restart c's record does not advertise its previous seal key")
	}
	if err := openSealed(a, c, old.Public); err != nil {
		t.Fatalf("a stream sealed to c's previous key, after c's restart: %v", err)
	}
	if err := openSealed(a, c, c.sealKeyNow().Public); err != nil {
		t.Fatalf("a stream sealed to c's current key: %v", err)
	}

	restart(Options{SealKeySwitch: time.Nanosecond, SealKeyGrace: time.Nanosecond})
	if rec, _ := a.record(c.ID()); rec.PrevSealKey != ([seal.KeyLen]byte{}) {
		t.Error("after the grace c's record still advertises its previous seal key")
	}
	if err := openSealed(a, c, old.Public); err == nil {
		t.Fatal("after the grace c still answers its previous seal key")
	}
	if _, err := os.Stat(filepath.Join(c.dir, sealPrevFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the previous seal key's file is still there after its grace: %v", err)
	}
}
