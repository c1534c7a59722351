package api

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/gofiber/fiber/v2"

	"gpt2d/auth"
	"gpt2d/store"
)

// tokenResponse is the OAuth2 token response; access_token and
// token_type are what the original service returned.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// formField reads a form field of an OAuth2 form post, copying it out of
// Fiber's reused buffer; a missing field, or one that is not valid UTF-8,
// is a 422 entry.
func formField(c *fiber.Ctx, name string, errs *[]fieldError) string {
	v := c.FormValue(name)
	switch {
	case v == "":
		*errs = append(*errs, fieldError{Loc: []any{"body", name}, Type: "missing", Msg: "Field required"})
	case !validText(v):
		*errs = append(*errs, fieldError{Loc: []any{"body", name}, Type: "string_unicode", Msg: msgInvalidUTF8})
	}
	return strings.Clone(v)
}

// credentialParams are refused in the query string: URLs end up in proxy
// logs, browser history and Referer headers.
var credentialParams = []string{"username", "password", "refresh_token", "client_secret"}

// refuseQueryCredentials answers 400 when the URL carries a credential.
func refuseQueryCredentials(c *fiber.Ctx) error {
	args := c.Request().URI().QueryArgs()
	for _, name := range credentialParams {
		if args.Has(name) {
			return &httpError{status: fiber.StatusBadRequest, param: name,
				detail: "Credentials must be sent in the request body, never in the URL"}
		}
	}
	return nil
}

// login is POST /token: the OAuth2 password flow with form fields
// username and password. Refused attempts (throttled) are counted in the
// metrics and summarised in the audit trail, not written one by one; a
// failed attempt is audited with the username cut to the registration
// limit, or redacted when it names no account (it may be a password typed
// into the wrong field).
func (s *Server) login(c *fiber.Ctx) error {
	if err := refuseQueryCredentials(c); err != nil {
		return err
	}
	var errs []fieldError
	username := formField(c, "username", &errs)
	password := formField(c, "password", &errs)
	if gt := c.FormValue("grant_type"); gt != "" && gt != "password" {
		errs = append(errs, fieldError{Loc: []any{"body", "grant_type"}, Type: "string_pattern_mismatch",
			Msg: "String should match pattern '^password$'", Ctx: map[string]any{"pattern": "^password$"}})
	}
	if len(errs) > 0 {
		return invalid(errs...)
	}
	u, err := s.auth.Login(c.UserContext(), s.clientIP(c), username, password)
	var te *auth.ThrottledError
	switch {
	case errors.As(err, &te):
		s.tel.authFailures.inc(reasonThrottled)
		if write, n := s.throttled.note(s.cfg.Now()); write {
			s.audit(c, slog.LevelWarn, "login.throttled", nil, "", map[string]any{"refused_since_last_event": n, "scope": te.Scope})
		}
		return retryLater(fiber.StatusTooManyRequests, "Too many failed login attempts, retry later", te.RetryAfter)
	case errors.Is(err, auth.ErrInvalidCredentials):
		s.tel.authFailures.inc(reasonLoginFailed)
		s.audit(c, slog.LevelWarn, "login.failure", nil, s.loggableUsername(username), nil)
		return unauthorized(detailLoginFailed)
	case err != nil:
		return err
	}
	s.audit(c, slog.LevelInfo, "login.success", u, u.Username, nil)
	return s.sendTokens(c, u)
}

// sendTokens answers a login of u with a new access and refresh token.
func (s *Server) sendTokens(c *fiber.Ctx, u *store.User) error {
	access, err := s.auth.IssueAccessToken(u)
	if err != nil {
		return err
	}
	refresh, err := s.auth.IssueRefreshToken(u)
	if err != nil {
		return err
	}
	return s.writeTokens(c, access, refresh)
}

// writeTokens answers a grant with an access and a refresh token, marked
// not to be cached.
func (s *Server) writeTokens(c *fiber.Ctx, access, refresh string) error {
	c.Set(fiber.HeaderPragma, "no-cache")
	return c.JSON(tokenResponse{
		AccessToken:  access,
		TokenType:    "bearer",
		ExpiresIn:    int(s.auth.TokenTTL().Seconds()),
		RefreshToken: refresh,
	})
}

// refresh is POST /token/refresh with refresh_token as a form field (the
// OAuth2 refresh grant) or in a JSON object.
func (s *Server) refresh(c *fiber.Ctx) error {
	if err := refuseQueryCredentials(c); err != nil {
		return err
	}
	var token string
	if isJSON(c.Get(fiber.HeaderContentType)) {
		b, err := parseJSON(c)
		if err != nil {
			return err
		}
		token = b.str("refresh_token", true, 1, 0)
		if err := b.err(); err != nil {
			return err
		}
	} else {
		var errs []fieldError
		token = formField(c, "refresh_token", &errs)
		if len(errs) > 0 {
			return invalid(errs...)
		}
	}
	u, access, next, err := s.auth.Refresh(token)
	var te *auth.ThrottledError
	switch {
	case errors.As(err, &te):
		return retryLater(fiber.StatusTooManyRequests, "Too many token refreshes, retry later", te.RetryAfter)
	case errors.Is(err, auth.ErrRefreshReuse):
		s.tel.authFailures.inc(reasonRefreshReuse)
		s.audit(c, slog.LevelWarn, "token.refresh.reuse", nil, "", map[string]any{"revoked": "token family"})
		return unauthorized(detailBadCredentials)
	case errors.Is(err, auth.ErrInvalidToken):
		return unauthorized(detailBadCredentials)
	case err != nil:
		return err
	}
	s.audit(c, slog.LevelInfo, "token.refresh", u, u.Username, nil)
	return s.writeTokens(c, access, next)
}

// logout is POST /logout: it revokes every access and refresh token of
// the caller, on all devices. API keys stay: they are revoked one by one
// or with POST /users/me/keys/revoke-all.
func (s *Server) logout(c *fiber.Ctx) error {
	u := currentUser(c)
	if err := s.auth.Logout(u.ID); err != nil {
		return err
	}
	s.audit(c, slog.LevelInfo, "logout", u, u.Username, nil)
	return c.JSON(fiber.Map{"detail": "Logged out"})
}
