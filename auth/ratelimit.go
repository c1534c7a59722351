package auth

import (
	"sync"
	"time"
)

// RateLimiter bounds events per key (a user id) with one token bucket per
// key: capacity N, refilled at N per minute, so bursts up to N and N per
// minute sustained. A bucket left alone for a minute is full again, which
// is the same as having none, so idle buckets are dropped when the map
// grows: memory follows the keys active in the last minute.
//
// A RateLimiter is safe for concurrent use.
type RateLimiter struct {
	mu      sync.Mutex
	buckets map[uint64]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// sweepAbove is the bucket count beyond which idle buckets are dropped.
const sweepAbove = 10_000

// NewRateLimiter returns an empty RateLimiter.
func NewRateLimiter() *RateLimiter {
	return &RateLimiter{buckets: map[uint64]*tokenBucket{}}
}

// Take spends one event of key's bucket of size perMinute at time now, or
// returns how long until one is available (and spends nothing).
func (l *RateLimiter) Take(key uint64, perMinute int64, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	capacity := float64(perMinute)
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= sweepAbove {
			for id, o := range l.buckets {
				if now.Sub(o.last) >= time.Minute {
					delete(l.buckets, id)
				}
			}
		}
		b = &tokenBucket{tokens: capacity, last: now}
		l.buckets[key] = b
	}
	perSecond := capacity / 60
	elapsed := max(now.Sub(b.last), 0)
	b.tokens = min(capacity, b.tokens+elapsed.Seconds()*perSecond)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / perSecond * float64(time.Second))
}
