package api

import (
	"log/slog"
	"time"

	"gpt2d/auth"
	"gpt2d/store"
)

// This file holds the per-user limits that replicas sharing one store
// enforce together: Config.Quota and Config.RequestRates make N replicas
// admit what one would.

// requestLimiter bounds a user's generation requests per minute:
// auth.RateLimiter in this process's memory, or auth.SharedRateLimiter
// over a CounterStore shared by replicas.
type requestLimiter interface {
	// Take spends one request of user's allowance at now, or returns how
	// long until one is available.
	Take(user uint64, perMinute int64, now time.Time) (time.Duration, error)
}

// memRequests is the in-process requestLimiter.
type memRequests struct{ l *auth.RateLimiter }

func (m memRequests) Take(user uint64, perMinute int64, now time.Time) (time.Duration, error) {
	return m.l.Take(user, perMinute, now), nil
}

// newRequestLimiter returns the limiter Config asks for.
func newRequestLimiter(shared auth.CounterStore) requestLimiter {
	if shared != nil {
		return auth.NewSharedRateLimiter(shared)
	}
	return memRequests{auth.NewRateLimiter()}
}

// sharedQuota is the tokenQuota of replicas sharing a store.QuotaStore:
// reservations and the usage that settles them are written to the store
// in one step, so that every replica's admissions see them. Usage of a
// request that held no reservation (its user has no daily limit) goes
// through the usage recorder as usual.
type sharedQuota struct {
	qs    store.QuotaStore
	usage *usageRecorder
	log   *slog.Logger
	// hold bounds an unsettled reservation (its replica died mid-
	// generation): longer than any generation may run.
	hold time.Duration
}

func (q *sharedQuota) Reserve(user uint64, at time.Time, n, limit int64) (reservation, int64, bool, error) {
	// Tokens this replica spent but has not stored yet count too.
	pending := q.usage.pendingTokens(user, at)
	r, used, ok, err := q.qs.ReserveTokens(user, at, n, limit-pending, q.hold)
	if err != nil || !ok {
		return reservation{}, used + pending, false, err
	}
	return reservation{user: user, day: r.Day, tokens: r.Tokens, id: r.ID}, used + pending, true, nil
}

func (q *sharedQuota) Settle(r reservation, user, key uint64, at time.Time, spent store.Counts) {
	if r.id == 0 {
		if spent != (store.Counts{}) {
			q.usage.record(user, key, at, spent)
		}
		return
	}
	err := q.qs.SettleTokens(store.Reservation{ID: r.id, UserID: r.user, Day: r.day, Tokens: r.tokens},
		store.Usage{Day: at, UserID: user, KeyID: key, Counts: spent})
	if err != nil {
		// The usage is kept through the recorder (retried until stored);
		// the reservation expires by itself after hold.
		q.log.Warn("quota: settling in the store failed; usage recorded locally", "user_id", user, "err", err)
		if spent != (store.Counts{}) {
			q.usage.record(user, key, at, spent)
		}
	}
}

func (q *sharedQuota) Spent(user uint64, at time.Time) (int64, error) {
	return q.usage.dayTokens(user, at)
}

// pendingTokens returns the tokens user spent on the UTC day of t that
// this process holds and has not finished storing.
func (r *usageRecorder) pendingTokens(user uint64, t time.Time) int64 {
	day := store.Day(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, m := range []map[usageKey]store.Counts{r.pending, r.flushing} {
		for k, c := range m {
			if k.user == user && k.day.Equal(day) {
				n += c.Tokens()
			}
		}
	}
	return n
}
