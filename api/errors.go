package api

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"gpt2d/store"
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
	detailScopeRequired     = "This API key lacks the generate scope"
	detailSessionRequired   = "Sign in to do this: API keys cannot manage keys, passwords or sessions"
	detailKeyNotFound       = "API key not found"
)

// storageFullRetry is the Retry-After of a 503 for a full disk: long
// enough not to hammer a server waiting for its operator.
const storageFullRetry = 30 * time.Second

// httpError is an error a handler returns to answer with a status, a
// {"detail": ...} body and optional headers. The error handler writes it,
// in OpenAI's shape on the /v1 routes.
type httpError struct {
	status  int
	detail  any // string, or []fieldError for 422
	headers map[string]string
	// code is a machine-readable code (OpenAI's error.code), e.g.
	// "rate_limit_exceeded"; extra holds more fields of the FastAPI-style
	// body, e.g. which limit a 429 hit.
	code  string
	extra map[string]any
	// param names the offending parameter in OpenAI's body when detail is
	// a string (field errors name their own).
	param string
	// cause is the error behind the answer (an engine error, say), for
	// the request's log line; the client never sees it.
	cause error
}

func (e *httpError) Error() string {
	if e.cause != nil {
		return "http " + strconv.Itoa(e.status) + ": " + e.cause.Error()
	}
	return "http " + strconv.Itoa(e.status)
}

// Unwrap returns the cause.
func (e *httpError) Unwrap() error { return e.cause }

func newError(status int, detail string) *httpError {
	return &httpError{status: status, detail: detail}
}

// unauthorized is a 401 with the WWW-Authenticate challenge OAuth2 bearer
// clients expect.
func unauthorized(detail string) *httpError {
	return &httpError{status: fiber.StatusUnauthorized, detail: detail,
		headers: map[string]string{fiber.HeaderWWWAuthenticate: "Bearer"}}
}

// expired is the 401 of an expired access token or API key: its challenge
// says so (RFC 6750 §3.1), so that a client knows to refresh rather than
// to sign in again. Other refusals keep the bare challenge and the same
// generic text, so as not to tell an attacker which check failed.
func expired() *httpError {
	he := unauthorized(detailBadCredentials)
	he.headers[fiber.HeaderWWWAuthenticate] = `Bearer error="invalid_token", error_description="token expired"`
	return he
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
	case errors.Is(err, store.ErrUnavailable):
		// The shared database is down or unreachable: the request may
		// succeed once it is back (the pool reconnects by itself).
		s.log.WarnContext(c.UserContext(), "store unavailable", "method", c.Method(), "path", c.Path(), "err", err)
		he = retryLater(fiber.StatusServiceUnavailable, "Service temporarily unavailable: the store cannot be reached", 5*time.Second)
	case errors.Is(err, store.ErrNoSpace):
		// Nothing was stored; the same request succeeds once the operator
		// frees space, without a restart.
		s.log.ErrorContext(c.UserContext(), "store full: request refused", "method", c.Method(), "path", c.Path(), "err", err)
		he = retryLater(fiber.StatusServiceUnavailable, "Storage is full, retry later", storageFullRetry)
	default:
		s.log.ErrorContext(c.UserContext(), "request failed", "method", c.Method(), "path", c.Path(), "err", err)
		he = newError(fiber.StatusInternalServerError, "Internal Server Error")
	}
	for k, v := range he.headers {
		c.Set(k, v)
	}
	if isOpenAIRoute(c.Path()) {
		status, body := he.openAI()
		return c.Status(status).JSON(body)
	}
	body := fiber.Map{"detail": he.detail}
	for k, v := range he.extra {
		body[k] = v
	}
	return c.Status(he.status).JSON(body)
}

// openAIError is the body of an error in OpenAI's API.
type openAIError struct {
	Error openAIErrorBody `json:"error"`
}

type openAIErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// openAI renders the error the way OpenAI's API does: validation errors
// are 400 invalid_request_error naming the offending parameter, 401 has
// code invalid_api_key, 429 says which limit (type requests or tokens).
func (he *httpError) openAI() (int, openAIError) {
	status := he.status
	e := openAIErrorBody{Type: "invalid_request_error"}
	switch d := he.detail.(type) {
	case string:
		e.Message = d
	case []fieldError:
		status = fiber.StatusBadRequest
		msgs := make([]string, len(d))
		for i, fe := range d {
			msgs[i] = fe.Msg
			if len(fe.Loc) > 1 {
				msgs[i] = fmt.Sprint(fe.Loc[len(fe.Loc)-1]) + ": " + fe.Msg
			}
		}
		e.Message = strings.Join(msgs, "; ")
		if len(d[0].Loc) > 1 {
			p := fmt.Sprint(d[0].Loc[len(d[0].Loc)-1])
			e.Param = &p
		}
	}
	if he.param != "" {
		p := he.param
		e.Param = &p
	}
	code := he.code
	switch {
	case status == fiber.StatusUnauthorized:
		code = "invalid_api_key"
	case status == fiber.StatusForbidden:
		e.Type = "permission_error"
	case status == fiber.StatusTooManyRequests:
		e.Type = "requests"
		if he.extra["limit"] == limitTokensPerDay {
			e.Type = "tokens"
		}
	case status >= 500:
		e.Type = "server_error"
	}
	if code != "" {
		e.Code = &code
	}
	return status, openAIError{Error: e}
}

// isOpenAIRoute reports whether path belongs to the OpenAI-compatible API,
// whose errors take OpenAI's shape.
func isOpenAIRoute(path string) bool { return strings.HasPrefix(path, "/v1/") }

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
