package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"time"

	"gpt2d/store"
)

// LoginThrottleConfig is the policy against password guessing. Three kinds
// of counters see every attempt, each reserved before the password is
// hashed and settled after:
//
//   - Pair: failures of one username from one address. The tight key: 5
//     free failures, then 1 s, 2 s, 4 s … up to 15 minutes. It stops a
//     guesser at one address without touching anyone else.
//   - Address: failures from one address over all usernames. Looser (30
//     free failures by default), so that a few typos by the people behind
//     one NAT or proxy slow no one, while spraying passwords over many
//     usernames from one address is slowed like guessing one.
//   - Username: failures of one username from every address (20 free by
//     default). It never refuses by itself. Over its budget the username is
//     under attack, and then an address that has failed for it loses its
//     free failures (every further attempt waits 1 s, 2 s, 4 s …), while an
//     address with no failures for it is only slowed, by at most
//     MaxSlowdown. The owner, typing the right password from an address
//     with no failures, always gets in; an attacker spread over many
//     addresses gets about one guess per address.
//
// A success forgets the pair's failures, never the address's or the
// username's: the owner logging in does not give an attacker fresh
// guesses.
type LoginThrottleConfig struct {
	Pair     ThrottleConfig // zero: 5 free failures
	Address  ThrottleConfig // zero: 30 free failures
	Username ThrottleConfig // zero: 20 free failures
	// MaxSlowdown bounds the delay of an attempt on a username over its
	// budget from an address with no failures for it (0 → 2 s).
	MaxSlowdown time.Duration
	// Store keeps the counters (nil: an in-process MemoryCounters). Give
	// replicas one shared store to share their throttles.
	Store CounterStore
}

func (c LoginThrottleConfig) withDefaults() LoginThrottleConfig {
	if c.Address.FreeFailures <= 0 {
		c.Address.FreeFailures = 30
	}
	if c.Username.FreeFailures <= 0 {
		c.Username.FreeFailures = 20
	}
	c.Pair = c.Pair.withDefaults()
	c.Address = c.Address.withDefaults()
	c.Username = c.Username.withDefaults()
	if c.MaxSlowdown <= 0 {
		c.MaxSlowdown = 2 * time.Second
	}
	if c.Store == nil {
		c.Store = NewMemoryCounters(0)
	}
	return c
}

// Scopes of a refused login, as ThrottledError.Scope.
const (
	ScopePair    = "pair"
	ScopeAddress = "address"
)

// LoginStats counts login attempts since the Service was made, for
// metrics. Attempts refused by a throttle never reach bcrypt.
type LoginStats struct {
	Admitted       uint64 // attempts evaluated (password hashed)
	Succeeded      uint64
	Failed         uint64
	RefusedPair    uint64 // refused by the (username, address) key
	RefusedAddress uint64 // refused by the address key
	Slowed         uint64 // admitted after a delay: username over its budget
	InFlight       int64  // reserved and not yet settled
	// Keys is the number of counters held in memory, or -1 when the store
	// does not say.
	Keys int
}

type loginThrottle struct {
	cfg LoginThrottleConfig
	now func() time.Time

	admitted, succeeded, failed, refusedPair, refusedAddress, slowed atomic.Uint64
	inFlight                                                         atomic.Int64
}

// loginAttempt is a reserved login attempt.
type loginAttempt struct {
	t    *loginThrottle
	keys []string
	done atomic.Bool
}

// throttleKey names a counter. Client-supplied parts are hashed, so a key
// has a fixed size however long the username sent.
func throttleKey(kind string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return kind + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

// reserve admits or refuses an attempt at username (folded) from ip. An
// admitted attempt may come with a delay to wait before evaluating it.
func (t *loginThrottle) reserve(ip, username string) (*loginAttempt, time.Duration, error) {
	keys := []string{
		throttleKey("login-pair", username, ip),
		throttleKey("login-addr", ip),
		throttleKey("login-user", username),
	}
	var refused *ThrottledError
	var slow time.Duration
	err := t.cfg.Store.Update(t.now(), keys, func(cs []Counter) []Counter {
		now := t.now()
		pair, addr, user := cs[0], cs[1], cs[2]
		refused, slow = nil, 0
		if w := t.cfg.Address.wait(addr, t.cfg.Address.FreeFailures, now); w > 0 {
			refused = &ThrottledError{RetryAfter: w, Scope: ScopeAddress}
			return cs
		}
		pairFree := t.cfg.Pair.FreeFailures
		if n := user.Failures + user.InFlight; n >= t.cfg.Username.FreeFailures {
			if pair.Failures+pair.InFlight > 0 {
				pairFree = 0
			} else {
				slow = min(t.cfg.Username.delay(n+1, t.cfg.Username.FreeFailures), t.cfg.MaxSlowdown)
			}
		}
		if w := t.cfg.Pair.wait(pair, pairFree, now); w > 0 {
			refused = &ThrottledError{RetryAfter: w, Scope: ScopePair}
			return cs
		}
		return []Counter{t.cfg.Pair.reserve(pair, now), t.cfg.Address.reserve(addr, now), t.cfg.Username.reserve(user, now)}
	})
	switch {
	case err != nil:
		return nil, 0, err
	case refused != nil && refused.Scope == ScopeAddress:
		t.refusedAddress.Add(1)
		return nil, 0, refused
	case refused != nil:
		t.refusedPair.Add(1)
		return nil, 0, refused
	}
	t.admitted.Add(1)
	t.inFlight.Add(1)
	if slow > 0 {
		t.slowed.Add(1)
	}
	return &loginAttempt{t: t, keys: keys}, slow, nil
}

// settle ends the attempt: a failure counts on all three keys; a success
// forgets the pair's failures; a cancelled attempt counts nothing.
func (a *loginAttempt) settle(failed, cancelled bool) error {
	if !a.done.CompareAndSwap(false, true) {
		return nil
	}
	t := a.t
	t.inFlight.Add(-1)
	switch {
	case failed:
		t.failed.Add(1)
	case !cancelled:
		t.succeeded.Add(1)
	}
	return t.cfg.Store.Update(t.now(), a.keys, func(cs []Counter) []Counter {
		now := t.now()
		return []Counter{
			t.cfg.Pair.settle(cs[0], failed, !cancelled, now),
			t.cfg.Address.settle(cs[1], failed, false, now),
			t.cfg.Username.settle(cs[2], failed, false, now),
		}
	})
}

func (t *loginThrottle) stats() LoginStats {
	st := LoginStats{
		Admitted: t.admitted.Load(), Succeeded: t.succeeded.Load(), Failed: t.failed.Load(),
		RefusedPair: t.refusedPair.Load(), RefusedAddress: t.refusedAddress.Load(), Slowed: t.slowed.Load(),
		InFlight: t.inFlight.Load(), Keys: -1,
	}
	if l, ok := t.cfg.Store.(interface{ Len() int }); ok {
		st.Keys = l.Len()
	}
	return st
}

// LoginStats returns the login counters, for metrics.
func (s *Service) LoginStats() LoginStats { return s.logins.stats() }

// Login checks a username and password for a client at ip. The attempt is
// reserved with the throttle (see LoginThrottleConfig) before the password
// is hashed: a refused attempt returns a *ThrottledError without looking
// at the password. Unknown users, wrong passwords and disabled accounts
// all give ErrInvalidCredentials after the same amount of work. ctx ends
// a slowed attempt's wait.
func (s *Service) Login(ctx context.Context, ip, username, password string) (*store.User, error) {
	var u *store.User
	err := s.guarded(ctx, ip, username, func() (bool, error) {
		var err error
		if len(username) <= maxUsernameBytes { // longer names cannot exist
			u, err = s.db.UserByUsername(username)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		var hash []byte
		if u != nil {
			hash = u.PasswordHash
		}
		return s.verifyPassword(hash, password) && u != nil && !u.Disabled, nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// guarded runs one password check of username from ip under the login
// throttle: it reserves the attempt, waits out a slow-down, runs check
// and settles the attempt by its outcome. A refused attempt gives a
// *ThrottledError without running check; a failed check gives
// ErrInvalidCredentials; an error of check (the store's) counts nothing.
func (s *Service) guarded(ctx context.Context, ip, username string, check func() (bool, error)) error {
	att, slow, err := s.logins.reserve(ip, store.FoldUsername(username))
	if err != nil {
		return err
	}
	if slow > 0 {
		if err := s.cfg.Sleep(ctx, slow); err != nil {
			att.settle(false, true)
			return err
		}
	}
	ok, err := check()
	if err != nil {
		att.settle(false, true)
		return err
	}
	if err := att.settle(!ok, false); err != nil {
		return err
	}
	if !ok {
		return ErrInvalidCredentials
	}
	return nil
}

// maxUsernameBytes bounds the names Login looks up: MaxUsernameChars
// characters of at most 4 bytes each (names stored before the PRECIS
// rules had the same character bound).
const maxUsernameBytes = 4 * MaxUsernameChars

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
