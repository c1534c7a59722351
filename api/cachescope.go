package api

import (
	"fmt"
	"strconv"

	"github.com/gofiber/fiber/v2"
)

// PrefixCacheScope says which requests share the engine's prefix cache
// (gpt2.Request.CacheScope). A cached prefix makes the first token of a
// prompt that begins with it come sooner, so whoever shares the cache
// can tell from the time to first token whether someone in the same
// scope sent that prefix recently: a side channel across the users of a
// scope.
type PrefixCacheScope string

// The prefix cache scopes.
const (
	// PrefixCacheUser, the default, shares cached prefixes only among
	// one user's requests, over all their sessions and API keys: no user
	// learns anything of another's prompts from the timing, and a user
	// repeating a long prompt or conversation still gets its prefix.
	PrefixCacheUser PrefixCacheScope = "user"
	// PrefixCacheGlobal shares them across every user: a system prompt
	// common to all is computed once for everyone, but each user can
	// probe whether others sent a given prefix. For a single-tenant
	// deployment, where every user is trusted with every prompt.
	PrefixCacheGlobal PrefixCacheScope = "global"
)

// Check reports whether s names a scope ("" is PrefixCacheUser).
func (s PrefixCacheScope) Check() error {
	switch s {
	case "", PrefixCacheUser, PrefixCacheGlobal:
		return nil
	}
	return fmt.Errorf("api: prefix cache scope %q: want %q or %q", string(s), PrefixCacheUser, PrefixCacheGlobal)
}

// cacheScope returns the engine cache scope of the caller of c: the
// user's id under PrefixCacheUser, one scope for all under
// PrefixCacheGlobal. A request without a user (none reaches the engine
// today) gets a scope of its own, sharing with nobody.
func (s *Server) cacheScope(c *fiber.Ctx) string {
	if s.cfg.PrefixCacheScope == PrefixCacheGlobal {
		return ""
	}
	if u := currentUser(c); u != nil {
		return "user:" + strconv.FormatUint(u.ID, 10)
	}
	return newID("request-")
}
