package auth

import (
	"container/list"
	"fmt"
	"sync"
	"time"
)

// ThrottleConfig configures a Throttle. The zero value allows 5 failures,
// then waits 1 s, 2 s, 4 s … up to 15 minutes between attempts, forgets a
// key 15 minutes after its last failure (or once its wait is over, if
// longer), and tracks at most 10 000 keys.
type ThrottleConfig struct {
	FreeFailures int
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	Forget       time.Duration
	MaxKeys      int
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
	if c.MaxKeys <= 0 {
		c.MaxKeys = 10_000
	}
	return c
}

// ThrottledError reports an attempt refused because of earlier failures.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("auth: too many failed attempts; retry after %s", e.RetryAfter.Round(time.Second))
}

// Throttle counts failures per key (a client IP, a username) and imposes
// an exponentially growing wait after the free ones. Memory is bounded by
// MaxKeys: when full, expired keys go first, then the least recently
// failed. An attacker can therefore only reset a key's count by making
// MaxKeys failures on other keys, which the per-IP key limits in turn.
//
// A Throttle is safe for concurrent use.
type Throttle struct {
	cfg ThrottleConfig
	now func() time.Time

	mu   sync.Mutex
	keys map[string]*list.Element // → *throttleEntry
	lru  list.List                // front = most recently failed
}

type throttleEntry struct {
	key      string
	failures int
	last     time.Time // time of the latest failure
}

// NewThrottle returns a Throttle; now nil means time.Now.
func NewThrottle(cfg ThrottleConfig, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{cfg: cfg.withDefaults(), now: now, keys: map[string]*list.Element{}}
}

// delay is the wait imposed after n failures.
func (t *Throttle) delay(n int) time.Duration {
	over := n - t.cfg.FreeFailures
	if over <= 0 {
		return 0
	}
	d := t.cfg.BaseDelay
	for i := 1; i < over && d < t.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, t.cfg.MaxDelay)
}

func (t *Throttle) expired(e *throttleEntry, now time.Time) bool {
	return now.Sub(e.last) > max(t.cfg.Forget, t.delay(e.failures))
}

// Wait returns how long key must wait before its next attempt (0: go).
func (t *Throttle) Wait(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.keys[key]
	if !ok {
		return 0
	}
	e := el.Value.(*throttleEntry)
	now := t.now()
	if t.expired(e, now) {
		t.remove(el)
		return 0
	}
	return max(0, e.last.Add(t.delay(e.failures)).Sub(now))
}

// Fail records a failed attempt for key.
func (t *Throttle) Fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if el, ok := t.keys[key]; ok {
		e := el.Value.(*throttleEntry)
		if t.expired(e, now) {
			e.failures = 0
		}
		e.failures++
		e.last = now
		t.lru.MoveToFront(el)
		return
	}
	if len(t.keys) >= t.cfg.MaxKeys {
		t.evict(now)
	}
	t.keys[key] = t.lru.PushFront(&throttleEntry{key: key, failures: 1, last: now})
}

// Reset forgets key's failures (after a successful login).
func (t *Throttle) Reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.keys[key]; ok {
		t.remove(el)
	}
}

// Len returns the number of keys tracked.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}

// evict drops expired keys from the back of the LRU list, or the oldest
// key if none has expired.
func (t *Throttle) evict(now time.Time) {
	for el := t.lru.Back(); el != nil; {
		prev := el.Prev()
		if t.expired(el.Value.(*throttleEntry), now) {
			t.remove(el)
		}
		el = prev
	}
	if len(t.keys) >= t.cfg.MaxKeys {
		t.remove(t.lru.Back())
	}
}

func (t *Throttle) remove(el *list.Element) {
	delete(t.keys, el.Value.(*throttleEntry).key)
	t.lru.Remove(el)
}
