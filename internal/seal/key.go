package seal

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/flynn/noise"
	"golang.org/x/crypto/curve25519"
)

// KeyLen is the length of a public or private X25519 key.
const KeyLen = 32

// Key is a site's static X25519 key pair.
type Key struct {
	Private [KeyLen]byte
	Public  [KeyLen]byte
}

// GenerateKey makes a key pair from rng (crypto/rand when nil).
func GenerateKey(rng io.Reader) (Key, error) {
	if rng == nil {
		rng = rand.Reader
	}
	kp, err := noise.DH25519.GenerateKeypair(rng)
	if err != nil {
		return Key{}, err
	}
	var k Key
	copy(k.Private[:], kp.Private)
	copy(k.Public[:], kp.Public)
	return k, nil
}

// keyFromPrivate completes a key pair from its private half.
func keyFromPrivate(priv []byte) (Key, error) {
	pub, err := curve25519.X25519(priv, curve25519.Basepoint)
	if err != nil {
		return Key{}, err
	}
	var k Key
	copy(k.Private[:], priv)
	copy(k.Public[:], pub)
	return k, nil
}

func (k Key) dh() noise.DHKey {
	return noise.DHKey{Private: k.Private[:], Public: k.Public[:]}
}

// LoadOrCreateKey reads the private key kept at path (32 raw bytes, mode
// 0600), or makes one and writes it there on first use.
func LoadOrCreateKey(path string) (Key, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(b) != KeyLen || bytes.Equal(b, make([]byte, KeyLen)) {
			return Key{}, fmt.Errorf("seal key %s: %d bytes, want %d non-zero: remove it to make a new one (peers pick the new key up from the site record)", path, len(b), KeyLen)
		}
		return keyFromPrivate(b)
	case !errors.Is(err, os.ErrNotExist):
		return Key{}, fmt.Errorf("seal key: %w", err)
	}
	k, err := GenerateKey(nil)
	if err != nil {
		return Key{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".seal-key-*")
	if err != nil {
		return Key{}, fmt.Errorf("seal key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(k.Private[:]); err != nil {
		tmp.Close()
		return Key{}, fmt.Errorf("seal key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return Key{}, fmt.Errorf("seal key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Key{}, fmt.Errorf("seal key: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return Key{}, fmt.Errorf("seal key: %w", err)
	}
	return k, nil
}
