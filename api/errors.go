package api

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// The "detail" strings clients of the original service compare against.
const (
	detailNotAuthenticated  = "Not authenticated"
	detailBadCredentials    = "Could not validate credentials"
	detailLoginFailed       = "Incorrect username or password"
	detailAdminRequired     = "Admin access required"
	detailUsernameTaken     = "Username already registered"
	detailBlockedContent    = "Prompt contains inappropriate content"
	detailUserNotFound      = "User not found"
	detailLastAdmin         = "Cannot remove the last admin"
	detailRegistrationClose = "Registration is closed"
)

// httpError is an error a handler returns to answer with a status, a
// {"detail": ...} body and optional headers. The error handler writes it.
type httpError struct {
	status  int
	detail  any // string, or []fieldError for 422
	headers map[string]string
}

func (e *httpError) Error() string { return "http " + strconv.Itoa(e.status) }

func newError(status int, detail string) *httpError {
	return &httpError{status: status, detail: detail}
}

// unauthorized is a 401 with the WWW-Authenticate challenge OAuth2 bearer
// clients expect.
func unauthorized(detail string) *httpError {
	return &httpError{status: fiber.StatusUnauthorized, detail: detail,
		headers: map[string]string{fiber.HeaderWWWAuthenticate: "Bearer"}}
}

// retryLater is a 429 or 503 with Retry-After in whole seconds (≥ 1).
func retryLater(status int, detail string, after time.Duration) *httpError {
	secs := int((after + time.Second - 1) / time.Second)
	return &httpError{status: status, detail: detail,
		headers: map[string]string{fiber.HeaderRetryAfter: strconv.Itoa(max(secs, 1))}}
}

// fieldError is one entry of a FastAPI-style 422 body:
// {"detail":[{"loc":["body","prompt"],"msg":"Field required","type":"missing"}]}.
// It never carries the offending input, which may be a password.
type fieldError struct {
	Loc  []any          `json:"loc"`
	Msg  string         `json:"msg"`
	Type string         `json:"type"`
	Ctx  map[string]any `json:"ctx,omitempty"`
}

func invalid(errs ...fieldError) *httpError {
	return &httpError{status: fiber.StatusUnprocessableEntity, detail: errs}
}

// errorHandler turns every error a handler or Fiber itself returns into a
// {"detail": ...} JSON response. Unexpected errors are logged and answered
// with a bare 500 that reveals nothing.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	var he *httpError
	var fe *fiber.Error
	switch {
	case errors.As(err, &he):
	case errors.As(err, &fe):
		he = newError(fe.Code, fe.Message)
		if fe.Code == fiber.StatusRequestEntityTooLarge {
			he.detail = "Request body too large"
		}
	default:
		s.log.ErrorContext(c.UserContext(), "request failed", "method", c.Method(), "path", c.Path(), "err", err)
		he = newError(fiber.StatusInternalServerError, "Internal Server Error")
	}
	for k, v := range he.headers {
		c.Set(k, v)
	}
	return c.Status(he.status).JSON(fiber.Map{"detail": he.detail})
}

// logLevelFor is the level a response of this status is logged at.
func logLevelFor(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status == fiber.StatusUnauthorized, status == fiber.StatusForbidden, status == fiber.StatusTooManyRequests:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
