package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gpt2d/store"
)

// An API key is KeyPrefix followed by 32 random bytes, base64url-encoded.
// The prefix tells keys and JWTs apart (and lets secret scanners find
// leaked keys). Only the key's SHA-256 is stored: the key has 256 bits of
// entropy, so a slow hash would add nothing, and a stolen store file
// yields no usable key.
const (
	KeyPrefix = "g2d_"
	keyLen    = len(KeyPrefix) + 43 // base64url of 32 bytes, unpadded
	// shownPrefix is how much of a key lists show: enough to recognise
	// it, far too little to guess the rest.
	shownPrefix = len(KeyPrefix) + 8
)

// IsAPIKey reports whether a bearer credential is shaped like an API key
// rather than a JWT.
func IsAPIKey(bearer string) bool { return strings.HasPrefix(bearer, KeyPrefix) }

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// CreateAPIKey issues a key for owner and returns it with its stored
// record; the key is not kept and cannot be shown again. Without scopes
// the key gets the generate scope. Asking for the admin scope when owner
// is not an admin fails with ErrScopeNotAllowed. expiresAt may be nil
// (the key does not expire). Errors from the store (store.ErrTooManyKeys,
// store.ErrNotFound) are returned as is.
func (s *Service) CreateAPIKey(owner *store.User, name string, scopes []store.Scope, expiresAt *time.Time) (string, *store.APIKey, error) {
	if len(scopes) == 0 {
		scopes = []store.Scope{store.ScopeGenerate}
	}
	scopes = slices.Clone(scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	for _, sc := range scopes {
		if !sc.Valid() {
			return "", nil, errors.New("auth: unknown scope " + string(sc))
		}
		if sc == store.ScopeAdmin && owner.Role != store.RoleAdmin {
			return "", nil, ErrScopeNotAllowed
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	rec := &store.APIKey{
		UserID:    owner.ID,
		Name:      name,
		Prefix:    key[:shownPrefix],
		Hash:      hashKey(key),
		Scopes:    scopes,
		CreatedAt: s.now().UTC(),
	}
	if expiresAt != nil {
		t := expiresAt.UTC()
		rec.ExpiresAt = &t
	}
	if err := s.db.CreateAPIKey(rec); err != nil {
		return "", nil, err
	}
	return key, rec, nil
}

// AuthenticateKey returns the API key record and its owner, read fresh
// from the store, for a presented key. Unknown (never issued or revoked)
// and expired keys, and keys of deleted or disabled users, give a
// *TokenError. The stored hash is compared in constant time.
func (s *Service) AuthenticateKey(key string) (*store.User, *store.APIKey, error) {
	if (len(key) != keyLen || !IsAPIKey(key)) && !s.IsLocalKey(key) {
		return nil, nil, tokenError(ReasonMalformed, "not an API key")
	}
	hash := hashKey(key)
	rec, err := s.db.APIKeyByHash(hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, tokenError(ReasonUnknownKey, "no such API key")
	}
	if err != nil {
		return nil, nil, err
	}
	// The index lookup found the record by this hash; comparing again in
	// constant time keeps the check independent of how the index is kept.
	if subtle.ConstantTimeCompare(rec.Hash, hash) != 1 {
		return nil, nil, tokenError(ReasonUnknownKey, "no such API key")
	}
	if rec.ExpiresAt != nil && !s.now().Before(*rec.ExpiresAt) {
		return nil, nil, tokenError(ReasonExpired, "API key %s expired at %s", rec.Prefix, rec.ExpiresAt.Format(time.RFC3339))
	}
	u, err := s.activeUser(rec.UserID)
	if err != nil {
		return nil, nil, err
	}
	if Disarmed(u, rec) {
		return nil, nil, tokenError(ReasonRevoked, "API key %s was disarmed when its owner was disabled", rec.Prefix)
	}
	return u, rec, nil
}

// Disarmed reports whether key k of u was disarmed by disabling u (and not
// re-armed since).
func Disarmed(u *store.User, k *store.APIKey) bool {
	return !u.KeysDisarmedBefore.IsZero() && !k.CreatedAt.After(u.KeysDisarmedBefore)
}

// RevokeAPIKeys deletes every API key the user holds now and returns how
// many. Each deletion is atomic and takes effect at once; a key created
// while it runs may survive it.
func (s *Service) RevokeAPIKeys(userID uint64) (int, error) {
	keys, err := s.db.APIKeys(userID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		switch err := s.db.DeleteAPIKey(userID, k.ID); {
		case err == nil:
			n++
		case !errors.Is(err, store.ErrNotFound): // gone meanwhile: fine
			return n, fmt.Errorf("revoke API key %d: %w", k.ID, err)
		}
	}
	return n, nil
}

// ErrUserDisabled reports an operation that needs an enabled user.
var ErrUserDisabled = errors.New("auth: user is disabled")

// RearmAPIKeys makes the API keys a user held when it was disabled work
// again (an admin's decision, once the user is enabled). It fails with
// ErrUserDisabled while the user is disabled and store.ErrNotFound for no
// such user. Sessions are left alone.
func (s *Service) RearmAPIKeys(userID uint64) (*store.User, error) {
	return s.db.UpdateUser(userID, func(u *store.User) error {
		if u.Disabled {
			return ErrUserDisabled
		}
		u.KeysDisarmedBefore = time.Time{}
		return nil
	})
}

// Allows reports whether a caller authenticated as u — with API key k, or
// with a session (access token) when k is nil — has scope sc. A session
// has all of its user's rights; a key has those of its scopes that its
// owner has now, so demoting an admin also disarms the admin keys they
// created.
func Allows(u *store.User, k *store.APIKey, sc store.Scope) bool {
	if u == nil {
		return false
	}
	if k != nil && !k.Has(sc) {
		return false
	}
	switch sc {
	case store.ScopeAdmin:
		return u.Role == store.RoleAdmin
	case store.ScopeGenerate:
		return true
	}
	return false
}
