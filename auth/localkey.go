package auth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"gpt2d/store"
)

// The local key is llama-server's and vLLM's --api-key for gpt2d: one
// secret the operator chooses (gpt2d serve --api-key-file or
// GPT2D_API_KEY), any string rather than a g2d_ key, that acts as an API
// key of an admin with every scope. It is kept like any API key — only
// its SHA-256, in a store record named LocalKeyName, so owner checks,
// disarming, usage and audit apply to it — and is recognised as a bearer
// credential by IsLocalKey.

// LocalKeyName is the name of the local key's API key record.
const LocalKeyName = "local key (--api-key-file)"

// MinLocalKeyBytes is the shortest local key accepted: it guards admin
// rights, so it must not be guessable.
const MinLocalKeyBytes = 16

// ErrLocalKey reports a local key that cannot be installed.
var ErrLocalKey = errors.New("auth: unusable local key")

// InstallLocalKey makes key a credential of owner, an admin, with the
// generate and admin scopes, replacing the local key owner had before (so
// changing the key revokes the old one at once). It is called once at
// start-up, before the Service serves requests.
func (s *Service) InstallLocalKey(owner *store.User, key string) error {
	switch {
	case len(key) < MinLocalKeyBytes:
		return fmt.Errorf("%w: at least %d bytes", ErrLocalKey, MinLocalKeyBytes)
	case strings.Count(key, ".") == 2:
		return fmt.Errorf("%w: shaped like a JWT (two dots)", ErrLocalKey)
	case strings.TrimSpace(key) != key || strings.ContainsAny(key, " \t\r\n"):
		return fmt.Errorf("%w: contains white space", ErrLocalKey)
	case owner.Role != store.RoleAdmin:
		return fmt.Errorf("%w: its owner %q is not an admin", ErrLocalKey, owner.Username)
	}
	hash := hashKey(key)
	keys, err := s.db.APIKeys(owner.ID)
	if err != nil {
		return err
	}
	have := false
	for _, k := range keys {
		switch {
		case k.Name != LocalKeyName:
		case subtle.ConstantTimeCompare(k.Hash, hash) == 1 && !Disarmed(owner, &k):
			have = true
		default:
			if err := s.db.DeleteAPIKey(owner.ID, k.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	if !have {
		if rec, err := s.db.APIKeyByHash(hash); err == nil && rec.UserID != owner.ID {
			return fmt.Errorf("%w: it is already an API key of user %d", ErrLocalKey, rec.UserID)
		}
		rec := &store.APIKey{
			UserID:    owner.ID,
			Name:      LocalKeyName,
			Prefix:    key[:4] + "…",
			Hash:      hash,
			Scopes:    []store.Scope{store.ScopeAdmin, store.ScopeGenerate},
			CreatedAt: s.now().UTC(),
		}
		if err := s.db.CreateAPIKey(rec); err != nil {
			return err
		}
	}
	s.localKey = hash
	return nil
}

// IsLocalKey reports whether bearer is the installed local key.
func (s *Service) IsLocalKey(bearer string) bool {
	return s.localKey != nil && subtle.ConstantTimeCompare(hashKey(bearer), s.localKey) == 1
}
