// Package datadir guards a data directory against a second process: a site or
// a controller holds an exclusive lock on DIR/lock for as long as it runs.
// Two processes on one directory would corrupt its state (two writers of the
// site's state.json, two leaders of one SQLite store), so the second one must
// stop at once with a message naming the first.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock file inside a data directory.
const LockFile = "lock"

// ErrInUse is returned (wrapped) when another process holds the directory.
var ErrInUse = errors.New("data directory is in use")

// Lock is an exclusive hold on a data directory, released by Unlock or when
// the process ends (the kernel drops flock locks with the last descriptor, so
// a SIGKILLed process leaves no stale lock behind).
type Lock struct {
	f *os.File
}

// Acquire creates dir if needed and takes its lock without waiting. If another
// process holds it, the error wraps ErrInUse and names that process's pid.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: data directory %s is in use by %s; stop it first or choose another directory", ErrInUse, dir, holder(f))
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	// The pid is only for the message above; the flock is the lock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// holder names the process that holds the lock, as far as its file says.
func holder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n]))); err == nil && pid > 0 {
		return "pid " + strconv.Itoa(pid)
	}
	return "another process"
}

// Unlock releases the directory. It is safe to call more than once.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// WriteFile replaces a file of a data directory so that a crash leaves the
// old or the new contents, never a torn mix.
func WriteFile(path string, b []byte, mode os.FileMode) error {
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
