package api

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"gpt2d/auth"
	"gpt2d/store"
)

// userOut is a user as the API shows it: never the password hash.
type userOut struct {
	ID       uint64     `json:"id"`
	Username string     `json:"username"`
	Role     store.Role `json:"role"`
	Disabled bool       `json:"disabled"`
}

func showUser(u *store.User) userOut {
	return userOut{ID: u.ID, Username: u.Username, Role: u.Role, Disabled: u.Disabled}
}

// parseRole reads the optional "role" field; def when absent.
func (b *body) role(name string, def store.Role) store.Role {
	if !b.has(name) {
		return def
	}
	r := store.Role(b.str(name, false, 0, 0))
	if !r.Valid() {
		b.fail(name, "enum", "Input should be 'user' or 'admin'", map[string]any{"expected": "'user' or 'admin'"})
	}
	return r
}

// register is POST /users. Anyone may create a "user" while registration
// is open; only an admin — a session, or an API key with the admin scope —
// may create an admin, or anyone once registration is closed. Failed
// attempts (a taken name, a forbidden role) are throttled per address and
// per name, and successful self-registrations are bounded per address by
// Config.SignupBudget: each account brings fresh per-user limits.
func (s *Server) register(c *fiber.Ctx) error {
	b, err := parseJSON(c)
	if err != nil {
		return err
	}
	username := b.username("username")
	password := b.password("password", username, s.auth.Policy())
	role := b.role("role", store.RoleUser)
	if err := b.err(); err != nil {
		return err
	}
	ip := s.clientIP(c)
	caller := currentUser(c)
	isAdmin := auth.Allows(caller, currentKey(c), store.ScopeAdmin)
	failures, err := s.registers.Reserve("register-addr:"+ip, "register-name:"+store.FoldUsername(username))
	if err != nil {
		return s.registrationThrottled(err, "Too many failed registrations, retry later")
	}
	defer failures.Release()
	switch {
	case role == store.RoleAdmin && !isAdmin:
		failures.Fail()
		s.audit(c, slog.LevelWarn, "user.register.denied", caller, username, map[string]any{"role": role, "reason": "admin role requested"})
		return newError(fiber.StatusForbidden, detailAdminRequired)
	case s.cfg.RegistrationClosed && !isAdmin:
		failures.Fail()
		return newError(fiber.StatusForbidden, detailRegistrationClose)
	}
	var signup *auth.Reservation
	if !isAdmin {
		if signup, err = s.signups.Reserve("signup-addr:" + ip); err != nil {
			return s.registrationThrottled(err, "Too many accounts created from this address, retry later")
		}
		defer signup.Release() // no-op once spent
	}

	u, err := s.auth.Register(username, password, role)
	var pe *auth.PolicyError
	var ue *auth.UsernameError
	switch {
	case errors.Is(err, store.ErrUsernameTaken):
		failures.Fail()
		return newError(fiber.StatusBadRequest, detailUsernameTaken)
	case errors.As(err, &pe):
		return invalid(policyFieldError("password", pe))
	case errors.As(err, &ue):
		return invalid(fieldError{Loc: []any{"body", "username"}, Type: "value_error", Msg: "Value error, " + ue.Error()})
	case err != nil:
		return err
	}
	if signup != nil {
		signup.Fail() // the account exists: the use is spent
	}
	s.audit(c, slog.LevelInfo, "user.register", caller, u.Username, map[string]any{"user_id": u.ID, "role": u.Role})
	return c.JSON(fiber.Map{"id": u.ID, "username": u.Username, "role": u.Role})
}

// registrationThrottled answers a refused registration: 429 with
// Retry-After for a throttle, the error itself otherwise.
func (s *Server) registrationThrottled(err error, detail string) error {
	var te *auth.ThrottledError
	if !errors.As(err, &te) {
		return err
	}
	s.throttled.registrations.Add(1)
	return retryLater(fiber.StatusTooManyRequests, detail, te.RetryAfter)
}

// me is GET /users/me.
func (s *Server) me(c *fiber.Ctx) error {
	return c.JSON(showUser(currentUser(c)))
}

// changePassword is POST /users/me/password. It revokes every access and
// refresh token the caller holds, including the one used for this
// request; API keys are kept (the answer says how many), and
// POST /users/me/keys/revoke-all ends them. A wrong current password
// counts as a failed login under the login throttle.
func (s *Server) changePassword(c *fiber.Ctx) error {
	b, err := parseJSON(c)
	if err != nil {
		return err
	}
	u := currentUser(c)
	current := b.str("current_password", true, 0, 0)
	if !validText(current) {
		b.fail("current_password", "string_unicode", msgInvalidUTF8, nil)
	}
	next := b.password("new_password", u.Username, s.auth.Policy())
	if err := b.err(); err != nil {
		return err
	}
	_, err = s.auth.ChangePassword(c.UserContext(), s.clientIP(c), u, current, next)
	var te *auth.ThrottledError
	var pe *auth.PolicyError
	switch {
	case errors.As(err, &te):
		return retryLater(fiber.StatusTooManyRequests, "Too many failed attempts, retry later", te.RetryAfter)
	case errors.Is(err, auth.ErrInvalidCredentials):
		s.audit(c, slog.LevelWarn, "password.change.failure", u, u.Username, nil)
		return newError(fiber.StatusBadRequest, "Incorrect password")
	case errors.As(err, &pe):
		return invalid(policyFieldError("new_password", pe))
	case err != nil:
		return err
	}
	keys, err := s.db.APIKeys(u.ID)
	if err != nil {
		return err
	}
	s.audit(c, slog.LevelInfo, "password.change", u, u.Username, nil)
	return c.JSON(fiber.Map{"detail": "Password changed; sign in again", "api_keys_kept": len(keys)})
}

// listUsers is GET /admin/users?skip=&limit=.
func (s *Server) listUsers(c *fiber.Ctx) error {
	skip, err := queryInt(c, "skip", 0, 0, 1<<31-1)
	if err != nil {
		return err
	}
	limit, err := queryInt(c, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	users, err := s.db.ListUsers(skip, limit)
	if err != nil {
		return err
	}
	out := make([]userOut, len(users))
	for i := range users {
		out[i] = showUser(&users[i])
	}
	return c.JSON(out)
}

var errNoChange = errors.New("no change")

// updateUser is PATCH /admin/users/{user_id} with {role?, disabled?}.
func (s *Server) updateUser(c *fiber.Ctx) error {
	id, err := pathID(c, "user_id")
	if err != nil {
		return err
	}
	b, err := parseJSON(c)
	if err != nil {
		return err
	}
	role := b.role("role", "")
	disabled, setDisabled := b.boolean("disabled")
	if err := b.err(); err != nil {
		return err
	}
	var changes map[string]any
	u, err := s.auth.Update(id, func(u *store.User) error {
		changes = map[string]any{}
		if role != "" && role != u.Role {
			changes["role"] = map[string]any{"from": u.Role, "to": role}
			u.Role = role
		}
		if setDisabled && disabled != u.Disabled {
			changes["disabled"] = disabled
			u.Disabled = disabled
		}
		if len(changes) == 0 {
			return errNoChange // keep the user's sessions
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		u, err = s.db.UserByID(id)
		if err != nil {
			return userError(err)
		}
		return c.JSON(showUser(u))
	}
	if err != nil {
		return userError(err)
	}
	action := "user.update"
	if _, ok := changes["role"]; ok {
		action = "user.role_change"
	}
	s.audit(c, slog.LevelInfo, action, currentUser(c), u.Username, changes)
	return c.JSON(showUser(u))
}

// pathUser returns the user the path's {user_id} names: a 422 for an id
// that is not a positive integer, a 404 for no such user.
func (s *Server) pathUser(c *fiber.Ctx) (*store.User, error) {
	id, err := pathID(c, "user_id")
	if err != nil {
		return nil, err
	}
	u, err := s.db.UserByID(id)
	if err != nil {
		return nil, userError(err)
	}
	return u, nil
}

// deleteUser is DELETE /admin/users/{user_id}.
func (s *Server) deleteUser(c *fiber.Ctx) error {
	u, err := s.pathUser(c)
	if err != nil {
		return err
	}
	if err := s.db.DeleteUser(u.ID); err != nil {
		return userError(err)
	}
	s.audit(c, slog.LevelInfo, "user.delete", currentUser(c), u.Username, map[string]any{"user_id": u.ID})
	return c.JSON(fiber.Map{"detail": "User deleted"})
}

// rearmKeys is POST /admin/users/{user_id}/keys/rearm: the API keys the
// user held when it was disabled work again. The user must be enabled
// first (409 otherwise).
func (s *Server) rearmKeys(c *fiber.Ctx) error {
	id, err := pathID(c, "user_id")
	if err != nil {
		return err
	}
	u, err := s.auth.RearmAPIKeys(id)
	if errors.Is(err, auth.ErrUserDisabled) {
		return newError(fiber.StatusConflict, "User is disabled; enable it first")
	}
	if err != nil {
		return userError(err)
	}
	keys, err := s.db.APIKeys(id)
	if err != nil {
		return err
	}
	s.audit(c, slog.LevelInfo, "apikey.rearm", currentUser(c), u.Username, map[string]any{"user_id": id, "keys": len(keys)})
	return c.JSON(fiber.Map{"detail": "API keys re-armed", "keys": len(keys)})
}

func userError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return newError(fiber.StatusNotFound, detailUserNotFound)
	case errors.Is(err, store.ErrLastAdmin):
		return newError(fiber.StatusConflict, detailLastAdmin)
	}
	return err
}
