package auth

import (
	"fmt"
	"sync"
	"time"
)

// ThrottleConfig configures the back-off of one kind of key. The zero
// value allows 5 failures, then waits 1 s, 2 s, 4 s … up to 15 minutes
// between attempts, and forgets a key 15 minutes after its last failure
// (or once its wait is over, if longer).
type ThrottleConfig struct {
	FreeFailures int
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	Forget       time.Duration
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	if c.FreeFailures <= 0 {
		c.FreeFailures = 5
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = time.Second
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 15 * time.Minute
	}
	if c.Forget <= 0 {
		c.Forget = 15 * time.Minute
	}
	return c
}

// inFlightTTL bounds how long a reservation keeps a counter alive: an
// attempt whose process died never settles, and its key must not stay
// reserved for ever.
const inFlightTTL = 5 * time.Minute

// ThrottledError reports an attempt refused because of earlier failures
// (or an exhausted budget).
type ThrottledError struct {
	RetryAfter time.Duration
	// Scope names the key that refused: "pair" (this username from this
	// address), "address", "username", or a Budget's name.
	Scope string
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("auth: too many attempts (%s); retry after %s", e.Scope, e.RetryAfter.Round(time.Second))
}

// delay is the wait imposed after n counted attempts when free of them
// cost nothing.
func (c ThrottleConfig) delay(n, free int) time.Duration {
	over := n - free
	if over <= 0 {
		return 0
	}
	d := c.BaseDelay
	for i := 1; i < over && d < c.MaxDelay; i++ {
		d *= 2
	}
	return min(d, c.MaxDelay)
}

// wait is how long before another attempt may start on k. Attempts in
// flight count as failures: N concurrent attempts are admitted exactly as
// N sequential failures would be.
func (c ThrottleConfig) wait(k Counter, free int, now time.Time) time.Duration {
	return max(0, k.Last.Add(c.delay(k.Failures+k.InFlight, free)).Sub(now))
}

// reserve counts one attempt in flight on k.
func (c ThrottleConfig) reserve(k Counter, now time.Time) Counter {
	k.InFlight++
	k.Last = now
	return c.expire(k, now)
}

// settle ends an attempt reserved on k: a failure is remembered, a success
// forgets k's failures when reset is set.
func (c ThrottleConfig) settle(k Counter, failed, reset bool, now time.Time) Counter {
	k.InFlight = max(0, k.InFlight-1)
	switch {
	case failed:
		k.Failures++
		k.Last = now
	case reset:
		k.Failures = 0
	}
	if k.Failures == 0 && k.InFlight == 0 {
		return Counter{} // forget it
	}
	return c.expire(k, now)
}

func (c ThrottleConfig) expire(k Counter, now time.Time) Counter {
	k.Expires = k.Last.Add(max(c.Forget, c.delay(k.Failures+k.InFlight, 0)))
	if k.InFlight > 0 {
		k.Expires = later(k.Expires, now.Add(inFlightTTL))
	}
	return k
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Throttle counts failures per key and imposes an exponentially growing
// wait after the free ones. An attempt is reserved before it is evaluated
// and settled afterwards, so concurrent attempts cannot all pass the check
// before any of them is counted.
//
// A Throttle is safe for concurrent use.
type Throttle struct {
	cfg   ThrottleConfig
	store CounterStore
	now   func() time.Time
	scope string
}

// NewThrottle returns a Throttle keeping its counts in store (nil: a
// MemoryCounters of its own); scope names it in ThrottledError; now nil
// means time.Now.
func NewThrottle(cfg ThrottleConfig, store CounterStore, scope string, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	if store == nil {
		store = NewMemoryCounters(0)
	}
	return &Throttle{cfg: cfg.withDefaults(), store: store, now: now, scope: scope}
}

// Reserve reserves one attempt on every key if all of them allow one now;
// otherwise it reserves nothing and returns a *ThrottledError with the
// longest wait. Settle the reservation with Fail or Release.
func (t *Throttle) Reserve(keys ...string) (*Reservation, error) {
	var wait time.Duration
	err := t.store.Update(t.now(), keys, func(cs []Counter) []Counter {
		now := t.now()
		wait = 0
		for _, c := range cs {
			wait = max(wait, t.cfg.wait(c, t.cfg.FreeFailures, now))
		}
		if wait > 0 {
			return cs
		}
		out := make([]Counter, len(cs))
		for i, c := range cs {
			out[i] = t.cfg.reserve(c, now)
		}
		return out
	})
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	if wait > 0 {
		return nil, &ThrottledError{RetryAfter: wait, Scope: t.scope}
	}
	return &Reservation{settle: func(failed bool) error {
		return t.store.Update(t.now(), keys, func(cs []Counter) []Counter {
			out := make([]Counter, len(cs))
			for i, c := range cs {
				out[i] = t.cfg.settle(c, failed, false, t.now())
			}
			return out
		})
	}}, nil
}

// Reservation is an attempt reserved on a throttle or a budget. Settle it
// exactly once; later calls do nothing.
type Reservation struct {
	once   sync.Once
	settle func(failed bool) error
}

// Fail settles the attempt as a failure (for a Budget: a use).
func (r *Reservation) Fail() error { return r.do(true) }

// Release settles the attempt as nothing to count.
func (r *Reservation) Release() error { return r.do(false) }

func (r *Reservation) do(failed bool) error {
	var err error
	r.once.Do(func() { err = r.settle(failed) })
	return err
}

// BudgetConfig bounds how many times something may happen per key in a
// window: Max per Window (0 Max: unlimited).
type BudgetConfig struct {
	Max    int
	Window time.Duration
}

// Budget allows Max uses per key in a fixed window that starts with the
// first use. A use is reserved before the work it stands for (so
// concurrent requests cannot overspend it), then kept (Fail) or given back
// (Release). It is how registrations per address are bounded.
//
// A Budget is safe for concurrent use.
type Budget struct {
	cfg   BudgetConfig
	store CounterStore
	now   func() time.Time
	scope string
}

// NewBudget returns a Budget keeping its counts in store (nil: its own
// MemoryCounters); a zero Window means one hour.
func NewBudget(cfg BudgetConfig, store CounterStore, scope string, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	if store == nil {
		store = NewMemoryCounters(0)
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	return &Budget{cfg: cfg, store: store, now: now, scope: scope}
}

// Reserve reserves one use of key's budget, or returns a *ThrottledError
// saying when the window ends. Settle with Fail (the use happened) or
// Release (it did not).
func (b *Budget) Reserve(key string) (*Reservation, error) {
	if b.cfg.Max <= 0 {
		return &Reservation{settle: func(bool) error { return nil }}, nil
	}
	var wait time.Duration
	keys := []string{key}
	err := b.store.Update(b.now(), keys, func(cs []Counter) []Counter {
		now, c := b.now(), cs[0]
		wait = 0
		if c.Last.IsZero() {
			c.Last = now
		}
		if c.Failures+c.InFlight >= b.cfg.Max {
			wait = max(time.Second, c.Last.Add(b.cfg.Window).Sub(now))
			return cs
		}
		c.InFlight++
		c.Expires = later(c.Last.Add(b.cfg.Window), now.Add(inFlightTTL))
		return []Counter{c}
	})
	if err != nil {
		return nil, fmt.Errorf("budget: %w", err)
	}
	if wait > 0 {
		return nil, &ThrottledError{RetryAfter: wait, Scope: b.scope}
	}
	return &Reservation{settle: func(used bool) error {
		return b.store.Update(b.now(), keys, func(cs []Counter) []Counter {
			c := cs[0]
			c.InFlight = max(0, c.InFlight-1)
			if c.Last.IsZero() { // the window ended meanwhile
				c.Last = b.now()
			}
			if used {
				c.Failures++
			}
			if c.Failures == 0 && c.InFlight == 0 {
				return []Counter{{}}
			}
			c.Expires = c.Last.Add(b.cfg.Window)
			if c.InFlight > 0 {
				c.Expires = later(c.Expires, b.now().Add(inFlightTTL))
			}
			return []Counter{c}
		})
	}}, nil
}
