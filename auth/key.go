package auth

import (
	"crypto/rand"
	"fmt"
	"os"
	"strings"

	"gpt2d/store"
)

// LoadKey returns the JWT signing key: secret if non-empty, else the
// contents of file if non-empty, else a 32-byte random key generated on
// first start and kept in the store, so tokens survive restarts. There is
// no built-in default key. Secrets and files shorter than MinKeyBytes are
// refused.
func LoadKey(db store.Store, secret, file string) ([]byte, error) {
	switch {
	case secret != "":
		if len(secret) < MinKeyBytes {
			return nil, ErrShortKey
		}
		return []byte(secret), nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("jwt key file: %w", err)
		}
		b = []byte(strings.TrimSpace(string(b)))
		if len(b) < MinKeyBytes {
			return nil, fmt.Errorf("jwt key file %s: %w", file, ErrShortKey)
		}
		return b, nil
	}
	return db.EnsureJWTKey(func() ([]byte, error) {
		k := make([]byte, MinKeyBytes)
		_, err := rand.Read(k)
		return k, err
	})
}
