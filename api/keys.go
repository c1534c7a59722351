package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/gofiber/fiber/v2"

	"gpt2d/auth"
	"gpt2d/store"
)

// keyOut is an API key as lists show it: never the key or its hash.
type keyOut struct {
	ID         uint64        `json:"id"`
	Name       string        `json:"name"`
	Prefix     string        `json:"prefix"`
	Scopes     []store.Scope `json:"scopes"`
	CreatedAt  time.Time     `json:"created_at"`
	ExpiresAt  *time.Time    `json:"expires_at"`
	LastUsedAt *time.Time    `json:"last_used_at"`
	// Disarmed is true for a key its owner held when an admin disabled
	// them: it stays refused until re-armed by an admin or replaced.
	Disarmed bool `json:"disarmed"`
}

func showKey(u *store.User, k *store.APIKey) keyOut {
	return keyOut{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.CreatedAt,
		ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt, Disarmed: auth.Disarmed(u, k)}
}

// newKeyOut is the answer to creating a key: the only time the key is
// shown.
type newKeyOut struct {
	Key string `json:"key"`
	keyOut
}

// maxKeyLifetime bounds expires_in_days and expires_at.
const maxKeyLifetime = 10 * 365 * 24 * time.Hour

// createKey is POST /users/me/keys {name, scopes?, expires_at? |
// expires_in_days?}. It answers 201 with the key, which is not kept and
// cannot be shown again.
func (s *Server) createKey(c *fiber.Ctx) error {
	b, err := parseJSON(c)
	if err != nil {
		return err
	}
	b.dropNulls()
	name := b.str("name", true, 1, 100)
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		b.fail("name", "value_error", "Value error, name must not contain control characters", nil)
	}
	scopes := b.scopes("scopes")
	now := s.cfg.Now()
	var expires *time.Time
	switch {
	case b.has("expires_at") && b.has("expires_in_days"):
		b.fail("expires_at", "value_error", "Value error, give expires_at or expires_in_days, not both", nil)
	case b.has("expires_at"):
		t, err := time.Parse(time.RFC3339, b.str("expires_at", false, 0, 0))
		switch {
		case err != nil:
			b.fail("expires_at", "datetime_from_date_parsing", "Input should be a valid RFC 3339 date-time", nil)
		case !t.After(now) || t.Sub(now) > maxKeyLifetime:
			b.fail("expires_at", "value_error", "Value error, expires_at must be in the future, within 10 years", nil)
		default:
			expires = &t
		}
	case b.has("expires_in_days"):
		t := now.Add(time.Duration(b.integer("expires_in_days", 0, 1, 3650)) * 24 * time.Hour)
		expires = &t
	}
	if err := b.err(); err != nil {
		return err
	}
	u := currentUser(c)
	key, rec, err := s.auth.CreateAPIKey(u, name, scopes, expires)
	switch {
	case errors.Is(err, auth.ErrScopeNotAllowed):
		s.audit(c, slog.LevelWarn, "apikey.create.denied", u, u.Username, map[string]any{"scopes": scopes})
		return newError(fiber.StatusForbidden, detailAdminRequired)
	case errors.Is(err, store.ErrTooManyKeys):
		return newError(fiber.StatusConflict, "Too many API keys; revoke one first")
	case err != nil:
		return err
	}
	s.audit(c, slog.LevelInfo, "apikey.create", u, u.Username, map[string]any{"key_id": rec.ID, "prefix": rec.Prefix, "scopes": rec.Scopes})
	c.Set(fiber.HeaderPragma, "no-cache")
	return c.Status(fiber.StatusCreated).JSON(newKeyOut{Key: key, keyOut: showKey(u, rec)})
}

// scopes reads an optional list of scopes.
func (b *body) scopes(name string) []store.Scope {
	raw, ok := b.fields[name]
	if !ok {
		return nil
	}
	var list []store.Scope
	if err := json.Unmarshal(raw, &list); err != nil {
		b.fail(name, "list_type", "Input should be a valid list", nil)
		return nil
	}
	for _, sc := range list {
		if !sc.Valid() {
			b.fail(name, "enum", "Input should be 'generate' or 'admin'", map[string]any{"expected": "'generate' or 'admin'"})
			return nil
		}
	}
	return list
}

// listKeys is GET /users/me/keys.
func (s *Server) listKeys(c *fiber.Ctx) error {
	if err := s.usage.flush(); err != nil { // last-used times
		return err
	}
	u := currentUser(c)
	keys, err := s.db.APIKeys(u.ID)
	if err != nil {
		return err
	}
	out := make([]keyOut, len(keys))
	for i := range keys {
		out[i] = showKey(u, &keys[i])
	}
	return c.JSON(out)
}

// revokeKey is DELETE /users/me/keys/{key_id}: the key stops working with
// the next request.
func (s *Server) revokeKey(c *fiber.Ctx) error {
	id, err := pathID(c, "key_id")
	if err != nil {
		return err
	}
	u := currentUser(c)
	if err := s.db.DeleteAPIKey(u.ID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return newError(fiber.StatusNotFound, detailKeyNotFound)
		}
		return err
	}
	s.audit(c, slog.LevelInfo, "apikey.revoke", u, u.Username, map[string]any{"key_id": id})
	return c.JSON(fiber.Map{"detail": "API key revoked"})
}

// revokeAllKeys is POST /users/me/keys/revoke-all: every API key of the
// caller stops working with the next request. Sessions are not touched
// (POST /logout ends them).
func (s *Server) revokeAllKeys(c *fiber.Ctx) error {
	u := currentUser(c)
	n, err := s.auth.RevokeAPIKeys(u.ID)
	if err != nil {
		return err
	}
	s.audit(c, slog.LevelInfo, "apikey.revoke_all", u, u.Username, map[string]any{"revoked": n})
	return c.JSON(fiber.Map{"detail": "API keys revoked", "revoked": n})
}
