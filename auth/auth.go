// Package auth decides who a caller is: password hashing and policy,
// login with throttling, JWT access tokens, rotating refresh tokens and
// API keys.
// It keeps its durable state in a store.Store and knows nothing of HTTP.
//
// A *Service is safe for concurrent use.
package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"gpt2d/store"
)

// Errors returned by the Service. Test for them with errors.Is.
var (
	// ErrInvalidCredentials is the one answer for an unknown user, a
	// wrong password and a disabled account, so that the three cannot be
	// told apart.
	ErrInvalidCredentials = errors.New("auth: incorrect username or password")
	// ErrInvalidToken reports an access or refresh token that does not
	// authenticate anyone.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrRefreshReuse reports a refresh token presented twice; the
	// token's family has been revoked.
	ErrRefreshReuse = errors.New("auth: refresh token reused")
	// ErrShortKey reports a JWT key under MinKeyBytes.
	ErrShortKey = fmt.Errorf("auth: JWT key must be at least %d bytes", MinKeyBytes)
	// ErrScopeNotAllowed reports an API key asked with a scope its owner
	// does not have (admin, for a user who is not an admin).
	ErrScopeNotAllowed = errors.New("auth: scope exceeds the owner's rights")
)

// Why a bearer credential was refused, as TokenError.Reason. They label
// the auth-failure metric, so the set is small and fixed.
const (
	ReasonMalformed    = "malformed"     // not a JWT or API key at all
	ReasonSignature    = "bad_signature" // wrong key or algorithm
	ReasonExpired      = "expired"       // past exp, or an expired API key
	ReasonClaims       = "bad_claims"    // missing or wrong iss, aud, iat, jti, sub
	ReasonUnknownUser  = "unknown_user"  // the user was deleted
	ReasonDisabledUser = "disabled_user"
	ReasonRevoked      = "revoked"     // issued before logout, password or role change
	ReasonUnknownKey   = "unknown_key" // no such API key (never issued, or revoked)
)

// TokenError reports a bearer credential (access token or API key) that
// does not authenticate anyone, and why. errors.Is(err, ErrInvalidToken)
// holds for every TokenError. Reason is for logs and metrics; callers
// must answer every reason the same way, so as not to tell an attacker
// which check failed.
type TokenError struct {
	Reason string
	Msg    string
}

func (e *TokenError) Error() string { return "auth: invalid token: " + e.Reason + ": " + e.Msg }

// Is makes a TokenError match ErrInvalidToken.
func (e *TokenError) Is(target error) bool { return target == ErrInvalidToken }

func tokenError(reason, format string, args ...any) *TokenError {
	return &TokenError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Config configures a Service. The zero value is ready to use.
type Config struct {
	// BcryptCost is the bcrypt work factor (0 → DefaultBcryptCost; tests
	// use bcrypt.MinCost).
	BcryptCost int
	// Policy is checked whenever a password is set.
	Policy PasswordPolicy
	// TokenTTL is the lifetime of access tokens (0 → 30 minutes).
	TokenTTL time.Duration
	// RefreshTTL is the lifetime of refresh tokens (0 → 7 days).
	RefreshTTL time.Duration
	// Issuer and Audience fill and are required in the iss and aud claims
	// ("" → "gpt2d").
	Issuer, Audience string
	// Throttle bounds failed logins per client IP and per username.
	Throttle ThrottleConfig
	// MaxConcurrentHashes caps bcrypt computations running at once (0 →
	// the number of CPUs), so that a burst of logins queues instead of
	// taking every core from generation.
	MaxConcurrentHashes int
	// Now is the clock (nil → time.Now). Tests inject one to expire tokens.
	Now func() time.Time
}

// Service authenticates users against a store.
type Service struct {
	cfg       Config
	db        store.Store
	key       []byte
	dummyHash []byte
	validator *jwt.Validator
	logins    *Throttle
	hashing   chan struct{} // semaphore: one token per running bcrypt
}

// New returns a Service that signs tokens with key (at least MinKeyBytes).
func New(db store.Store, key []byte, cfg Config) (*Service, error) {
	if len(key) < MinKeyBytes {
		return nil, ErrShortKey
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = DefaultBcryptCost
	}
	if cfg.BcryptCost < bcrypt.MinCost || cfg.BcryptCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("auth: bcrypt cost %d out of range [%d, %d]", cfg.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	cfg.Policy = cfg.Policy.withDefaults()
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 30 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 7 * 24 * time.Hour
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "gpt2d"
	}
	if cfg.Audience == "" {
		cfg.Audience = "gpt2d"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxConcurrentHashes <= 0 {
		cfg.MaxConcurrentHashes = runtime.NumCPU()
	}
	// The dummy hash makes an unknown username cost one full bcrypt
	// comparison, like a known one.
	var random [16]byte
	rand.Read(random[:])
	dummy, err := bcrypt.GenerateFromPassword(random[:], cfg.BcryptCost)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg:       cfg,
		db:        db,
		key:       append([]byte(nil), key...),
		dummyHash: dummy,
		validator: jwt.NewValidator(
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithTimeFunc(cfg.Now),
		),
		logins:  NewThrottle(cfg.Throttle, cfg.Now),
		hashing: make(chan struct{}, cfg.MaxConcurrentHashes),
	}, nil
}

// TokenTTL returns the lifetime of access tokens.
func (s *Service) TokenTTL() time.Duration { return s.cfg.TokenTTL }

// Policy returns the password policy in force.
func (s *Service) Policy() PasswordPolicy { return s.cfg.Policy }

func (s *Service) now() time.Time { return s.cfg.Now() }

// Register creates a user after checking the password policy. It returns
// a *PolicyError or store.ErrUsernameTaken for the caller to report.
func (s *Service) Register(username, password string, role store.Role) (*store.User, error) {
	hash, err := s.hashPassword(password)
	if err != nil {
		return nil, err
	}
	u := &store.User{Username: username, PasswordHash: hash, Role: role, CreatedAt: s.now().UTC()}
	if err := s.db.CreateUser(u); err != nil {
		return nil, err
	}
	return u, nil
}

// Login checks a username and password. Failures are counted per client
// IP and per username; once either is over the limit, Login returns a
// *ThrottledError without looking at the password. Unknown users, wrong
// passwords and disabled accounts all give ErrInvalidCredentials after
// the same amount of work.
func (s *Service) Login(ip, username, password string) (*store.User, error) {
	ipKey, userKey := "ip:"+ip, "user:"+store.FoldUsername(username)
	if wait := max(s.logins.Wait(ipKey), s.logins.Wait(userKey)); wait > 0 {
		return nil, &ThrottledError{RetryAfter: wait}
	}
	u, err := s.db.UserByUsername(username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var hash []byte
	if u != nil {
		hash = u.PasswordHash
	}
	if !s.verifyPassword(hash, password) || u == nil || u.Disabled {
		s.logins.Fail(ipKey)
		s.logins.Fail(userKey)
		return nil, ErrInvalidCredentials
	}
	s.logins.Reset(userKey)
	return u, nil
}

// ChangePassword sets a new password after checking the current one, and
// revokes every token the user holds (access and refresh). A wrong
// current password gives ErrInvalidCredentials and counts as a failed
// login for the username.
func (s *Service) ChangePassword(u *store.User, current, next string) (*store.User, error) {
	userKey := "user:" + store.FoldUsername(u.Username)
	if wait := s.logins.Wait(userKey); wait > 0 {
		return nil, &ThrottledError{RetryAfter: wait}
	}
	if !s.verifyPassword(u.PasswordHash, current) {
		s.logins.Fail(userKey)
		return nil, ErrInvalidCredentials
	}
	hash, err := s.hashPassword(next)
	if err != nil {
		return nil, err
	}
	return s.Update(u.ID, func(u *store.User) error {
		u.PasswordHash = hash
		return nil
	})
}

// Logout revokes every access and refresh token of the user.
func (s *Service) Logout(userID uint64) error {
	_, err := s.Update(userID, func(*store.User) error { return nil })
	return err
}

// Update applies fn to the user (see store.DB.UpdateUser for the last-
// admin rule) and then revokes all the user's tokens: every change made
// through the Service — password, role, disabling, logout — ends the
// sessions that were opened before it.
func (s *Service) Update(id uint64, fn func(u *store.User) error) (*store.User, error) {
	now := s.now().Truncate(time.Millisecond)
	u, err := s.db.UpdateUser(id, func(u *store.User) error {
		if err := fn(u); err != nil {
			return err
		}
		if now.After(u.TokensValidAfter) {
			u.TokensValidAfter = now
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.db.RevokeRefreshTokens(id); err != nil {
		return nil, err
	}
	return u, nil
}
