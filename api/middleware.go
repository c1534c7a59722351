package api

import (
	"errors"
	"log/slog"
	"strings"
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
	localsToken        = "jwt"
	localsUser         = "user"
	localsKey          = "apikey"
	localsMetricsToken = "metrics_token"
	localsClientIP     = "client_ip"
)

// authenticate is the one authentication middleware in front of every
// route. A bearer credential is either an access token (a JWT: HS256
// pinned, claims and the user as stored now checked by auth) or an API
// key (auth.KeyPrefix…, looked up by hash, its owner read fresh). It puts
// the *store.User, and the *store.APIKey if one was used, in the
// request's locals. Routes then check rights with requireAdmin,
// requireScope or requireSession.
func (s *Server) authenticate(c *fiber.Ctx) error {
	route := c.Method() + " " + c.Path()
	if publicRoutes[route] {
		return c.Next()
	}
	header := c.Get(fiber.HeaderAuthorization)
	if header == "" && optionalAuthRoutes[route] {
		return c.Next()
	}
	token, ok := bearerToken(header)
	if !ok {
		reason := reasonNotBearer
		if header == "" {
			reason = reasonMissing
		}
		s.tel.authFailures.inc(reason)
		return unauthorized(detailNotAuthenticated)
	}
	if route == "GET /metrics" && s.isMetricsToken(token) {
		c.Locals(localsMetricsToken, true)
		return c.Next()
	}
	if !auth.IsAPIKey(token) && !s.auth.IsLocalKey(token) {
		return s.jwt(c)
	}
	u, k, err := s.auth.AuthenticateKey(token)
	if err != nil {
		return s.refuse(err)
	}
	c.Locals(localsUser, u)
	c.Locals(localsKey, k)
	s.usage.touch(k.ID, s.cfg.Now())
	return c.Next()
}

// refuse turns a credential check's failure into 401 "Could not validate
// credentials", counting it by reason; other errors pass through.
func (s *Server) refuse(err error) error {
	var te *auth.TokenError
	if errors.As(err, &te) {
		s.tel.authFailures.inc(te.Reason)
		s.log.Debug("credential refused", "reason", te.Reason, "err", te.Msg)
		if te.Reason == auth.ReasonExpired {
			return expired()
		}
		return unauthorized(detailBadCredentials)
	}
	return err
}

// newJWTMiddleware verifies access tokens with gofiber/contrib/jwt
// (golang-jwt v5 underneath). KeyFunc rather than SigningKey:
// auth.Keyfunc refuses every algorithm but HS256 before handing out the
// key, since the middleware checks the algorithm only when told to; and
// because golang-jwt treats exp as optional, the success handler runs
// auth.Authenticate, which requires exp, iss, aud, iat and jti and reads
// the user as stored now.
func (s *Server) newJWTMiddleware() fiber.Handler {
	return jwtware.New(jwtware.Config{
		KeyFunc:    s.auth.Keyfunc,
		Claims:     &auth.Claims{},
		ContextKey: localsToken,
		SuccessHandler: func(c *fiber.Ctx) error {
			token, _ := c.Locals(localsToken).(*jwt.Token)
			claims, ok := token.Claims.(*auth.Claims)
			if !ok || token.Method == nil || token.Method.Alg() != auth.Alg {
				s.tel.authFailures.inc(auth.ReasonSignature)
				return unauthorized(detailBadCredentials)
			}
			u, err := s.auth.Authenticate(claims)
			if err != nil {
				return s.refuse(err)
			}
			c.Locals(localsUser, u)
			return c.Next()
		},
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			reason := auth.ReasonClaims
			switch {
			case errors.Is(err, jwtware.ErrJWTMissingOrMalformed), errors.Is(err, jwt.ErrTokenMalformed):
				reason = auth.ReasonMalformed
			case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
				reason = auth.ReasonSignature
			case errors.Is(err, jwt.ErrTokenExpired):
				s.tel.authFailures.inc(auth.ReasonExpired)
				return expired()
			}
			s.tel.authFailures.inc(reason)
			return unauthorized(detailBadCredentials)
		},
	})
}

// bearerToken extracts the credential of an "Authorization: Bearer X"
// header (scheme case-insensitive, X non-empty).
func bearerToken(header string) (string, bool) {
	const scheme = "Bearer "
	if len(header) <= len(scheme)+1 || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	token := strings.TrimSpace(header[len(scheme):])
	return token, token != ""
}

// currentUser returns the authenticated caller, or nil on public routes.
func currentUser(c *fiber.Ctx) *store.User {
	u, _ := c.Locals(localsUser).(*store.User)
	return u
}

// currentKey returns the API key the caller authenticated with, or nil
// for a session (access token) or a public route.
func currentKey(c *fiber.Ctx) *store.APIKey {
	k, _ := c.Locals(localsKey).(*store.APIKey)
	return k
}

// requireAdmin guards the /admin group: an admin's session, or an API key
// with the admin scope whose owner is still an admin.
func (s *Server) requireAdmin(c *fiber.Ctx) error {
	if !auth.Allows(currentUser(c), currentKey(c), store.ScopeAdmin) {
		s.tel.authFailures.inc(reasonForbidden)
		return newError(fiber.StatusForbidden, detailAdminRequired)
	}
	return c.Next()
}

// requireGenerate guards generation routes: every session may generate,
// an API key only with the generate scope.
func (s *Server) requireGenerate(c *fiber.Ctx) error {
	if !auth.Allows(currentUser(c), currentKey(c), store.ScopeGenerate) {
		s.tel.authFailures.inc(reasonForbidden)
		return newError(fiber.StatusForbidden, detailScopeRequired)
	}
	return c.Next()
}

// requireSession guards what a program holding an API key must not do:
// manage API keys, change the password, log out. They need a signed-in
// user's access token.
func (s *Server) requireSession(c *fiber.Ctx) error {
	if currentKey(c) != nil {
		s.tel.authFailures.inc(reasonForbidden)
		return newError(fiber.StatusForbidden, detailSessionRequired)
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

// maxLoggedPath bounds the request path in the log: a client chooses it.
const maxLoggedPath = 200

// logRequests writes one structured line per request — method, path (no
// query string, no body), status, duration, client IP, user and API key —
// and counts the request in the metrics.
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
	elapsed := time.Since(start)
	s.tel.observeRequest(c.Method(), s.routes.label(c.Method(), c.Path()), status, elapsed)
	attrs := []any{
		"method", c.Method(), "path", truncate(c.Path(), maxLoggedPath), "status", status,
		"duration_ms", float64(elapsed.Microseconds()) / 1000, "ip", s.clientIP(c), "request_id", requestID(c),
	}
	if id, ok := c.Locals(localsCompletionID).(string); ok {
		attrs = append(attrs, "completion_id", id)
	}
	var he *httpError
	if errors.As(err, &he) && he.cause != nil {
		attrs = append(attrs, "err", he.cause.Error())
	}
	if u := currentUser(c); u != nil {
		attrs = append(attrs, "user", u.Username, "user_id", u.ID)
	}
	if k := currentKey(c); k != nil {
		attrs = append(attrs, "key_id", k.ID)
	}
	level := logLevelFor(status)
	if status == fiber.StatusServiceUnavailable && c.Path() == "/health" {
		level = slog.LevelDebug // the model is loading: expected, polled by probes
	}
	s.log.Log(c.UserContext(), level, "request", attrs...)
	return nil
}
