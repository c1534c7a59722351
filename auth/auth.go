// Package auth decides who a caller is: password hashing and policy,
// login with throttling, JWT access tokens, rotating refresh tokens and
// API keys.
// It keeps its durable state in a store.Store and knows nothing of HTTP.
//
// A *Service is safe for concurrent use.
package auth

import (
	"context"
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
	// MaxRefreshFamilies caps a user's live refresh-token families, i.e.
	// sessions opened by logging in (0 → 20); a login beyond it ends the
	// oldest.
	MaxRefreshFamilies int
	// RefreshPerMinute bounds token refreshes per user (0 → 12 a minute,
	// with bursts of as many).
	RefreshPerMinute int
	// Issuer and Audience fill and are required in the iss and aud claims
	// ("" → "gpt2d").
	Issuer, Audience string
	// Throttle is the policy against password guessing (see
	// LoginThrottleConfig).
	Throttle LoginThrottleConfig
	// MaxConcurrentHashes caps bcrypt computations running at once (0 →
	// the number of CPUs), so that a burst of logins queues instead of
	// taking every core from generation.
	MaxConcurrentHashes int
	// ClockSkew is how far in the future an access token's iat or nbf may
	// lie, for replicas whose clocks differ (0 → 1 minute).
	ClockSkew time.Duration
	// KeyFile, when set, is the file the signing key was read from
	// (LoadKey): the Service reads it again when it changes, so that
	// `gpt2d keys rotate` takes effect in a running server.
	KeyFile string
	// Now is the clock (nil → time.Now). Tests inject one to expire tokens.
	Now func() time.Time
	// Sleep waits d or until ctx ends (nil → a timer); it delays slowed
	// logins. Tests inject one.
	Sleep func(ctx context.Context, d time.Duration) error
	// Compare checks a password against a bcrypt hash (nil →
	// bcrypt.CompareHashAndPassword). Tests inject one to count
	// comparisons.
	Compare func(hash, password []byte) error
}

// Service authenticates users against a store.
type Service struct {
	cfg       Config
	db        store.Store
	keys      *signingKey
	dummyHash []byte
	validator *jwt.Validator
	logins    *loginThrottle
	hashing   chan struct{} // semaphore: one token per running bcrypt
	localKey  []byte        // SHA-256 of the local key (InstallLocalKey); set before serving, then read-only
	refreshes *RateLimiter  // refreshes per user
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
	if cfg.MaxRefreshFamilies <= 0 {
		cfg.MaxRefreshFamilies = 20
	}
	if cfg.RefreshPerMinute <= 0 {
		cfg.RefreshPerMinute = 12
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
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Compare == nil {
		cfg.Compare = bcrypt.CompareHashAndPassword
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = time.Minute
	}
	cfg.Throttle = cfg.Throttle.withDefaults()
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
		keys:      newSigningKey(key, cfg.KeyFile, cfg.Now),
		dummyHash: dummy,
		validator: jwt.NewValidator(
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithTimeFunc(cfg.Now),
		),
		logins:    &loginThrottle{cfg: cfg.Throttle, now: cfg.Now},
		hashing:   make(chan struct{}, cfg.MaxConcurrentHashes),
		refreshes: NewRateLimiter(),
	}, nil
}

// TokenTTL returns the lifetime of access tokens.
func (s *Service) TokenTTL() time.Duration { return s.cfg.TokenTTL }

// Policy returns the password policy in force.
func (s *Service) Policy() PasswordPolicy { return s.cfg.Policy }

func (s *Service) now() time.Time { return s.cfg.Now() }

// Register creates a user after checking the username (NormalizeUsername:
// the user is stored under its normalised form) and the password
// (PasswordPolicy.CheckFor). It returns a *UsernameError, ErrInvalidUTF8,
// a *PolicyError or store.ErrUsernameTaken for the caller to report.
func (s *Service) Register(username, password string, role store.Role) (*store.User, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Policy.CheckFor(name, password); err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return nil, err
	}
	u := &store.User{Username: name, PasswordHash: hash, Role: role, CreatedAt: s.now().UTC()}
	if err := s.db.CreateUser(u); err != nil {
		return nil, err
	}
	return u, nil
}

// ChangePassword sets a new password after checking the current one, and
// revokes every access and refresh token the user holds; API keys are
// kept (they have their own life: see RevokeAPIKeys). A wrong current
// password gives ErrInvalidCredentials and counts as a failed login of the
// username from ip, under the same throttle as Login.
func (s *Service) ChangePassword(ctx context.Context, ip string, u *store.User, current, next string) (*store.User, error) {
	if err := s.cfg.Policy.CheckFor(u.Username, next); err != nil {
		return nil, err
	}
	if err := s.guarded(ctx, ip, u.Username, func() (bool, error) {
		return s.verifyPassword(u.PasswordHash, current), nil
	}); err != nil {
		return nil, err
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

// Logout revokes every access and refresh token of the user, on every
// device. API keys are kept: they belong to programs, not sessions (see
// RevokeAPIKeys).
func (s *Service) Logout(userID uint64) error {
	_, err := s.Update(userID, func(*store.User) error { return nil })
	return err
}

// Update applies fn to the user (see store.DB.UpdateUser for the last-
// admin rule) and then revokes all the user's tokens: every change made
// through the Service — password, role, disabling, logout — ends the
// sessions that were opened before it. Disabling a user also disarms its
// API keys for good: re-enabling does not bring them back (RearmAPIKeys
// does).
func (s *Service) Update(id uint64, fn func(u *store.User) error) (*store.User, error) {
	now := s.now().Truncate(time.Millisecond)
	u, err := s.db.UpdateUser(id, func(u *store.User) error {
		if err := fn(u); err != nil {
			return err
		}
		if u.Disabled {
			u.KeysDisarmedBefore = s.now().UTC()
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
