package auth

import (
	"strconv"
	"time"
)

// SharedRateLimiter bounds events per key (a user id) to perMinute per
// minute with bursts up to perMinute — a token bucket of capacity
// perMinute refilled at perMinute a minute, like RateLimiter — keeping its
// state in a CounterStore, so that replicas sharing the store (PostgreSQL)
// share every user's limit: N replicas admit what one would.
//
// It is the generic cell rate algorithm (GCRA), which needs one time per
// key instead of a bucket's level and time: the theoretical arrival time
// TAT of the next event at the sustained rate, kept in Counter.Last (and
// Counter.Expires: once now reaches TAT the bucket is full, which is the
// same as no counter). An event at now is admitted when TAT − now is at
// most the burst tolerance (perMinute − 1) × T, where T = 1 min /
// perMinute, and then moves TAT to max(TAT, now) + T.
//
// A SharedRateLimiter is safe for concurrent use.
type SharedRateLimiter struct {
	store CounterStore
}

// NewSharedRateLimiter returns a limiter keeping its state in store.
func NewSharedRateLimiter(store CounterStore) *SharedRateLimiter {
	return &SharedRateLimiter{store: store}
}

// Take spends one event of key's allowance of perMinute at time now, or
// returns how long until one is available (and spends nothing). An error
// of the store is returned as is.
func (l *SharedRateLimiter) Take(key uint64, perMinute int64, now time.Time) (time.Duration, error) {
	if perMinute <= 0 {
		return 0, nil
	}
	interval := time.Minute / time.Duration(perMinute)
	tolerance := interval * time.Duration(perMinute-1)
	var wait time.Duration
	err := l.store.Update(now, []string{"rate:" + strconv.FormatUint(key, 10)}, func(cs []Counter) []Counter {
		wait = 0
		tat := cs[0].Last
		if tat.Before(now) {
			tat = now
		}
		if ahead := tat.Sub(now); ahead > tolerance {
			wait = ahead - tolerance
			return cs
		}
		tat = tat.Add(interval)
		return []Counter{{Last: tat, Expires: tat}}
	})
	return wait, err
}
