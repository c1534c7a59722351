package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gpt2d/store"
)

// The signing key lives outside the store, so that backups of the store
// (gpt2d backup, GET /admin/backup) never carry it: a stolen backup must
// not let anyone mint access tokens. It comes from GPT2D_JWT_SECRET, or
// from a key file: by default beside a bbolt store, created 0600 with a
// random key on first start. Replicas share a key by pointing
// --jwt-secret-file at one file. Stores written by older versions kept
// the key in their meta bucket; LoadKey moves it to the key file (tokens
// issued before stay valid) and deletes it from the store. A PostgreSQL
// store has no "beside": without a key file its replicas share a key kept
// in the database (Store.EnsureJWTKey), which its dumps then carry.
//
// A key file holds either the secret as text (an operator's own, at least
// MinKeyBytes after trimming white space) or "base64:" and the key
// base64url-encoded, the form gpt2d writes.

// keyFilePrefix marks a key file written by gpt2d.
const keyFilePrefix = "base64:"

// DefaultKeyFile is the key file used with the store at dataPath when no
// other is configured: beside the store, named after it.
func DefaultKeyFile(dataPath string) string { return dataPath + ".jwt-key" }

// LoadKey returns the JWT signing key: secret if non-empty; else the key
// in file, which is created (mode 0600) if missing, holding the key an
// older store kept or a new random one — either way a key left in a bbolt
// store is deleted from it; else (no file: a PostgreSQL store) the key the
// store keeps for its replicas. There is no built-in default key; secrets
// and files shorter than MinKeyBytes are refused.
func LoadKey(db store.Store, secret, file string) ([]byte, error) {
	if secret != "" {
		if len(secret) < MinKeyBytes {
			return nil, ErrShortKey
		}
		return []byte(secret), scrubStoredKey(db)
	}
	if file == "" {
		return db.EnsureJWTKey(newKey)
	}
	key, err := ReadKeyFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		var stored []byte
		if m, ok := db.(storedKeyMover); ok {
			var serr error
			if stored, serr = m.StoredJWTKey(); serr != nil {
				return nil, fmt.Errorf("jwt key: %w", serr)
			}
		}
		if stored == nil {
			if stored, err = newKey(); err != nil {
				return nil, err
			}
		}
		if err = createKeyFile(file, stored); errors.Is(err, fs.ErrExist) {
			err = nil // another process made it first: use theirs
		}
		if err != nil {
			return nil, err
		}
		key, err = ReadKeyFile(file)
	}
	if err != nil {
		return nil, err
	}
	return key, scrubStoredKey(db)
}

// storedKeyMover is a store that can give up a signing key it keeps (the
// bbolt store), for LoadKey to move it to a key file.
type storedKeyMover interface {
	StoredJWTKey() ([]byte, error)
	DeleteJWTKey() error
}

func scrubStoredKey(db store.Store) error {
	m, ok := db.(storedKeyMover)
	if !ok {
		return nil
	}
	if err := m.DeleteJWTKey(); err != nil {
		return fmt.Errorf("jwt key: remove from store: %w", err)
	}
	return nil
}

func newKey() ([]byte, error) {
	k := make([]byte, MinKeyBytes)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("jwt key: %w", err)
	}
	return k, nil
}

// ReadKeyFile reads a key file (see LoadKey for its forms).
func ReadKeyFile(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("jwt key file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if rest, ok := bytes.CutPrefix(b, []byte(keyFilePrefix)); ok {
		if b, err = base64.RawURLEncoding.AppendDecode(nil, rest); err != nil {
			return nil, fmt.Errorf("jwt key file %s: %w", file, err)
		}
	}
	if len(b) < MinKeyBytes {
		return nil, fmt.Errorf("jwt key file %s: %w", file, ErrShortKey)
	}
	return b, nil
}

func encodeKey(key []byte) []byte {
	return []byte(keyFilePrefix + base64.RawURLEncoding.EncodeToString(key) + "\n")
}

// createKeyFile writes key to file only if file does not exist
// (fs.ErrExist otherwise): the key goes to a temporary file, is fsynced,
// and is linked into place, so that two processes starting at once agree
// on one key and no one reads a half-written file.
func createKeyFile(file string, key []byte) error {
	tmp, err := writeTemp(file, key)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, file); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("jwt key file: %w", err)
	}
	return syncDir(file)
}

// RotateKeyFile replaces the key in file with a new random one, atomically
// (rename). Every access token signed with the old key stops working; a
// running server reads the new key within a second (Config.KeyFile).
// Refresh tokens and API keys are not signed with it and stay valid.
func RotateKeyFile(file string) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	tmp, err := writeTemp(file, key)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("jwt key file: %w", err)
	}
	return syncDir(file)
}

func writeTemp(file string, key []byte) (string, error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("jwt key file: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("jwt key file: %w", err)
	}
	// CreateTemp makes the file 0600.
	_, err = f.Write(encodeKey(key))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("jwt key file: %w", err)
	}
	return f.Name(), nil
}

func syncDir(file string) error {
	d, err := os.Open(filepath.Dir(file))
	if err != nil {
		return fmt.Errorf("jwt key file: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("jwt key file: %w", err)
	}
	return nil
}

// signingKey is the key tokens are signed and checked with. With a key
// file it looks at the file at most once a second and takes a new key
// when the file changed, so a rotation reaches running servers.
type signingKey struct {
	file string
	now  func() time.Time

	mu      sync.Mutex
	key     []byte
	checked time.Time
	modTime time.Time
	size    int64
}

func newSigningKey(key []byte, file string, now func() time.Time) *signingKey {
	k := &signingKey{key: append([]byte(nil), key...), file: file, now: now, checked: now()}
	if file != "" {
		if fi, err := os.Stat(file); err == nil {
			k.modTime, k.size = fi.ModTime(), fi.Size()
		}
	}
	return k
}

// current returns the key in force. A key file that became unreadable or
// invalid keeps the last good key in force.
func (k *signingKey) current() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.file == "" {
		return k.key
	}
	if now := k.now(); now.Sub(k.checked) >= time.Second || now.Before(k.checked) {
		k.checked = now
		if fi, err := os.Stat(k.file); err == nil && (!fi.ModTime().Equal(k.modTime) || fi.Size() != k.size) {
			if key, err := ReadKeyFile(k.file); err == nil {
				k.key, k.modTime, k.size = key, fi.ModTime(), fi.Size()
			}
		}
	}
	return k.key
}
