package auth

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"gpt2d/store"
)

// DefaultBcryptCost is the bcrypt work factor used when Config.BcryptCost
// is 0. BenchmarkHashPassword measured on the project's 2-core machine:
// cost 10 ≈ 57 ms, 11 ≈ 124 ms, 12 ≈ 228 ms per hash. 11 bounds an
// offline guesser to ~8 guesses/s/core while a login, which happens once
// per refresh-token family, stays well under a second.
const DefaultBcryptCost = 11

// bcryptMaxBytes is the most bcrypt reads of a password; it ignores the
// rest, so longer passwords are refused rather than silently truncated.
const bcryptMaxBytes = 72

// PasswordPolicy says which passwords are accepted when they are set. The
// zero value means at least 8 characters and at most 72 bytes.
type PasswordPolicy struct {
	// MinChars is the minimum length in characters (runes), not bytes.
	MinChars int
	// MaxBytes is the maximum length in bytes; values above 72 are
	// lowered to 72, bcrypt's limit.
	MaxBytes int
}

func (p PasswordPolicy) withDefaults() PasswordPolicy {
	if p.MinChars <= 0 {
		p.MinChars = 8
	}
	if p.MaxBytes <= 0 || p.MaxBytes > bcryptMaxBytes {
		p.MaxBytes = bcryptMaxBytes
	}
	return p
}

// The rules a password can break, as PolicyError.Rule.
const (
	RuleTooShort    = "too_short"
	RuleTooLong     = "too_long"
	RuleNUL         = "nul"
	RuleInvalidUTF8 = "invalid_utf8"
	RuleCommon      = "common"
	RuleUsername    = "username"
)

// PolicyError reports a password that breaks the policy. Its message names
// the rule and the limit, never the password.
type PolicyError struct {
	Rule  string
	Limit int
}

func (e *PolicyError) Error() string {
	switch e.Rule {
	case RuleTooShort:
		return fmt.Sprintf("password must have at least %d characters", e.Limit)
	case RuleTooLong:
		return fmt.Sprintf("password must be at most %d bytes", e.Limit)
	case RuleInvalidUTF8:
		return "password must be valid UTF-8"
	case RuleCommon:
		return "password is one of the most common passwords; choose another"
	case RuleUsername:
		return "password must not be the username"
	default:
		return "password must not contain NUL characters"
	}
}

// Check returns a *PolicyError if password breaks the policy.
func (p PasswordPolicy) Check(password string) error {
	p = p.withDefaults()
	switch {
	case !utf8.ValidString(password) || strings.ContainsRune(password, utf8.RuneError):
		return &PolicyError{Rule: RuleInvalidUTF8}
	case strings.IndexByte(password, 0) >= 0:
		return &PolicyError{Rule: RuleNUL}
	case len(password) > p.MaxBytes:
		return &PolicyError{Rule: RuleTooLong, Limit: p.MaxBytes}
	case utf8.RuneCountInString(password) < p.MinChars:
		return &PolicyError{Rule: RuleTooShort, Limit: p.MinChars}
	}
	return nil
}

// CheckFor checks a password chosen by username: the rules of Check, then
// it must not be one of the 10 000 most common passwords (compared case-
// insensitively) nor the username itself (compared as usernames are).
func (p PasswordPolicy) CheckFor(username, password string) error {
	if err := p.Check(password); err != nil {
		return err
	}
	if IsCommonPassword(password) {
		return &PolicyError{Rule: RuleCommon}
	}
	if username != "" && store.FoldUsername(password) == store.FoldUsername(username) {
		return &PolicyError{Rule: RuleUsername}
	}
	return nil
}

// commonPasswordList is the 10 000 most frequent passwords of Mark
// Burnett's 10-million-password corpus (the xato.net release), in
// descending frequency, one per line, lower case: the first 10 000 lines
// of data/passwords.txt of Dropbox's zxcvbn (MIT licence), with its
// counts stripped.
//
//go:embed common_passwords.txt
var commonPasswordList string

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 10_000)
	for _, p := range strings.Split(commonPasswordList, "\n") {
		if p = strings.TrimSpace(p); p != "" {
			set[p] = struct{}{}
		}
	}
	return set
})

// IsCommonPassword reports whether password, in lower case, is one of the
// 10 000 most common passwords.
func IsCommonPassword(password string) bool {
	_, ok := commonPasswords()[strings.ToLower(password)]
	return ok
}

// hashPassword checks password against the policy and hashes it.
func (s *Service) hashPassword(password string) ([]byte, error) {
	if err := s.cfg.Policy.Check(password); err != nil {
		return nil, err
	}
	release := s.acquireHash()
	defer release()
	return bcrypt.GenerateFromPassword([]byte(password), s.cfg.BcryptCost)
}

// acquireHash waits for a bcrypt slot (Config.MaxConcurrentHashes) and
// returns its release. Waiting is fair enough for logins: bcrypt calls
// are short and all cost the same.
func (s *Service) acquireHash() (release func()) {
	s.hashing <- struct{}{}
	return func() { <-s.hashing }
}

// verifyPassword reports whether password matches hash. With a nil hash
// (unknown user) it compares against a dummy hash of the same cost, so the
// two cases take the same time. Passwords that could never have been set
// (too long, NUL) never match, but still cost one comparison.
func (s *Service) verifyPassword(hash []byte, password string) bool {
	settable := len(password) <= bcryptMaxBytes && strings.IndexByte(password, 0) < 0
	if hash == nil {
		hash = s.dummyHash
		settable = false
	}
	release := s.acquireHash()
	defer release()
	return s.cfg.Compare(hash, []byte(password)) == nil && settable
}
