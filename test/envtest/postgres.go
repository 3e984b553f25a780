package envtest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// StartPostgres starts a PostgreSQL server from Debian's postgresql package
// in a fresh cluster on a free 127.0.0.1 port, and returns a DSN for its
// superuser "postgres" (trust authentication) and database "postgres".
// Durability is switched off (fsync=off): the data lives as long as the test.
func StartPostgres(t testing.TB) (dsn string) {
	t.Helper()
	bin := postgresBinDir()
	initdb := need(t, "initdb (Debian package postgresql)", filepath.Join(bin, "initdb"), "initdb")
	postgres := need(t, "postgres (Debian package postgresql)", filepath.Join(bin, "postgres"), "postgres")
	isReady := need(t, "pg_isready (Debian package postgresql)", filepath.Join(bin, "pg_isready"), "pg_isready")

	dir := tempDir(t, "postgres")
	data := filepath.Join(dir, "data")
	// PostgreSQL refuses to run as root; as root, run it as the postgres
	// user the package creates and give that user the directory.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("envtest: running as root and no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}

	initLog := filepath.Join(dir, "initdb.log")
	p := start(t, "initdb", initLog, cred, initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	<-p.done
	if p.err != nil {
		t.Fatalf("envtest: initdb: %v; log:\n%s", p.err, p.logTail())
	}

	var port int
	onFreePorts(t, func() bool {
		port = freePort(t)
		os.Remove(filepath.Join(dir, "postgres.log")) // an earlier try's
		srv := start(t, "postgres", filepath.Join(dir, "postgres.log"), cred, postgres,
			"-D", data, "-p", strconv.Itoa(port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=50", "-c", "shared_buffers=16MB")
		t.Cleanup(srv.stop)
		return srv.waitReady(t, 30*time.Second, func(ctx context.Context) error {
			out, err := exec.CommandContext(ctx, isReady, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres").CombinedOutput()
			if err != nil {
				return fmt.Errorf("pg_isready: %v: %s", err, out)
			}
			return nil
		})
	})
	return fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", loopback(port))
}

// postgresBinDir returns Debian's versioned directory of server binaries,
// the newest if several versions are installed; "" if none.
func postgresBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	if len(dirs) == 0 {
		return ""
	}
	return dirs[len(dirs)-1]
}

// RunOnPostgres runs a package's store-backed tests once more on a
// PostgreSQL started for them, passed in WEFT_TEST_DSN, so that the default
// run covers both stores. With WEFT_TEST_DSN already set the whole package
// runs on PostgreSQL and there is nothing to add.
func RunOnPostgres(t *testing.T, tests map[string]func(*testing.T)) {
	if os.Getenv("WEFT_TEST_DSN") != "" {
		t.Skip("WEFT_TEST_DSN set: every test already runs on PostgreSQL")
	}
	t.Setenv("WEFT_TEST_DSN", StartPostgres(t))
	for _, name := range slices.Sorted(maps.Keys(tests)) {
		t.Run(name, tests[name])
	}
}
