package api

import (
	"errors"
	"time"

	jwtware "github.com/gofiber/contrib/jwt"
	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"gpt2d/auth"
	"gpt2d/store"
)

// publicRoutes are the only requests served without a bearer token. The
// match is exact on method and path (routing is case-sensitive and strict
// about trailing slashes), so anything not listed — including unknown
// paths — needs a valid token.
var publicRoutes = map[string]bool{
	"GET /health":         true,
	"HEAD /health":        true,
	"GET /docs":           true,
	"HEAD /docs":          true,
	"GET /openapi.json":   true,
	"HEAD /openapi.json":  true,
	"POST /token":         true,
	"POST /token/refresh": true,
}

// optionalAuthRoutes are public, but a bearer token that is sent is
// verified: an admin registering an admin is identified by it.
var optionalAuthRoutes = map[string]bool{
	"POST /users": true,
}

const (
	localsToken = "jwt"
	localsUser  = "user"
)

// authenticate is the one authentication middleware in front of every
// route. It checks the bearer token (HS256 pinned by auth.Keyfunc), then
// the claims and the user as stored now (auth.Authenticate), and puts the
// *store.User in the request's locals.
func (s *Server) authenticate() fiber.Handler {
	return jwtware.New(jwtware.Config{
		Filter: func(c *fiber.Ctx) bool {
			route := c.Method() + " " + c.Path()
			if publicRoutes[route] {
				return true
			}
			return optionalAuthRoutes[route] && c.Get(fiber.HeaderAuthorization) == ""
		},
		// KeyFunc rather than SigningKey: auth.Keyfunc refuses every alg
		// but HS256 before handing out the key, and the key stays in auth.
		KeyFunc:    s.auth.Keyfunc,
		Claims:     &auth.Claims{},
		ContextKey: localsToken,
		SuccessHandler: func(c *fiber.Ctx) error {
			token, _ := c.Locals(localsToken).(*jwt.Token)
			claims, ok := token.Claims.(*auth.Claims)
			if !ok {
				return unauthorized(detailBadCredentials)
			}
			u, err := s.auth.Authenticate(claims)
			if errors.Is(err, auth.ErrInvalidToken) {
				return unauthorized(detailBadCredentials)
			}
			if err != nil {
				return err
			}
			c.Locals(localsUser, u)
			return c.Next()
		},
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			if errors.Is(err, jwtware.ErrJWTMissingOrMalformed) {
				return unauthorized(detailNotAuthenticated)
			}
			return unauthorized(detailBadCredentials)
		},
	})
}

// currentUser returns the authenticated caller, or nil on public routes.
func currentUser(c *fiber.Ctx) *store.User {
	u, _ := c.Locals(localsUser).(*store.User)
	return u
}

// requireAdmin guards the /admin group.
func requireAdmin(c *fiber.Ctx) error {
	if u := currentUser(c); u == nil || u.Role != store.RoleAdmin {
		return newError(fiber.StatusForbidden, detailAdminRequired)
	}
	return c.Next()
}

// securityHeaders sets headers every response should carry.
func securityHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

// logRequests writes one structured line per request: method, path (no
// query string, no body), status, duration, client IP and user.
func (s *Server) logRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		// Write the error response now so its status is logged.
		if herr := s.errorHandler(c, err); herr != nil {
			c.Status(fiber.StatusInternalServerError)
		}
	}
	status := c.Response().StatusCode()
	attrs := []any{
		"method", c.Method(), "path", c.Path(), "status", status,
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000, "ip", c.IP(),
	}
	if u := currentUser(c); u != nil {
		attrs = append(attrs, "user", u.Username, "user_id", u.ID)
	}
	s.log.Log(c.UserContext(), logLevelFor(status), "request", attrs...)
	return nil
}
