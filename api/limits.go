package api

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"gpt2d/store"
)

// Limits are per-user rate limits on generation. A zero field means
// unlimited. Config holds one set per role; an admin can override either
// field for one user (PUT /admin/users/{id}/limits).
type Limits struct {
	// RequestsPerMinute bounds generation requests (/generate,
	// /v1/completions), with bursts up to the same number.
	RequestsPerMinute int64
	// TokensPerDay bounds prompt plus completion tokens per UTC day. It is
	// checked before a request starts, so the request that crosses it
	// runs to completion.
	TokensPerDay int64
}

// The limits a 429 can name, in its body's "limit" field.
const (
	limitRequestsPerMinute = "requests_per_minute"
	limitTokensPerDay      = "tokens_per_day"
)

// limitsFor returns u's limits: the role's, with u's overrides applied.
func (s *Server) limitsFor(u *store.User) Limits {
	l := s.cfg.UserLimits
	if u.Role == store.RoleAdmin {
		l = s.cfg.AdminLimits
	}
	if o := u.Limits; o != nil {
		if o.RequestsPerMinute != nil {
			l.RequestsPerMinute = *o.RequestsPerMinute
		}
		if o.TokensPerDay != nil {
			l.TokensPerDay = *o.TokensPerDay
		}
	}
	return l
}

// tokensToday returns the tokens user spent on the UTC day of now, stored
// and pending.
func (s *Server) tokensToday(user uint64, now time.Time) (int64, error) {
	stored, err := s.db.DayTokens(user, now)
	return stored + s.usage.pendingTokens(user, now), err
}

// admit applies the caller's limits to a generation request about to
// start: a 429 with Retry-After and the limit's name when one is reached,
// else it counts the request against the per-minute limit.
func (s *Server) admit(who caller) error {
	lim := s.limitsFor(who.user)
	now := s.cfg.Now()
	if lim.TokensPerDay > 0 {
		used, err := s.tokensToday(who.user.ID, now)
		if err != nil {
			return err
		}
		if used >= lim.TokensPerDay {
			s.tel.rateLimited.inc(limitTokensPerDay)
			return rateLimited(limitTokensPerDay, lim.TokensPerDay,
				fmt.Sprintf("Daily token limit reached: %d tokens per day; it resets at midnight UTC", lim.TokensPerDay),
				store.Day(now).AddDate(0, 0, 1).Sub(now))
		}
	}
	if lim.RequestsPerMinute > 0 {
		if wait := s.requests.take(who.user.ID, lim.RequestsPerMinute, now); wait > 0 {
			s.tel.rateLimited.inc(limitRequestsPerMinute)
			return rateLimited(limitRequestsPerMinute, lim.RequestsPerMinute,
				fmt.Sprintf("Rate limit reached: %d requests per minute", lim.RequestsPerMinute), wait)
		}
	}
	return nil
}

func rateLimited(limit string, value int64, msg string, wait time.Duration) *httpError {
	he := retryLater(fiber.StatusTooManyRequests, msg, wait)
	he.code = "rate_limit_exceeded"
	retry, _ := strconv.Atoi(he.headers[fiber.HeaderRetryAfter])
	he.extra = map[string]any{"limit": limit, "limit_value": value, "retry_after": retry}
	return he
}

// requestLimiter enforces requests per minute with one token bucket per
// user: capacity N, refilled at N per minute. A bucket left alone for a
// minute is full again, which is the same as having none, so idle buckets
// are dropped when the map grows: memory follows the users active in the
// last minute.
//
// A requestLimiter is safe for concurrent use.
type requestLimiter struct {
	mu      sync.Mutex
	buckets map[uint64]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// sweepAbove is the bucket count beyond which idle buckets are dropped.
const sweepAbove = 10_000

func newRequestLimiter() *requestLimiter {
	return &requestLimiter{buckets: map[uint64]*tokenBucket{}}
}

// take spends one request of user's bucket of size perMinute at time
// now, or returns how long until one is available.
func (l *requestLimiter) take(user uint64, perMinute int64, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	capacity := float64(perMinute)
	b, ok := l.buckets[user]
	if !ok {
		if len(l.buckets) >= sweepAbove {
			for id, o := range l.buckets {
				if now.Sub(o.last) >= time.Minute {
					delete(l.buckets, id)
				}
			}
		}
		b = &tokenBucket{tokens: capacity, last: now}
		l.buckets[user] = b
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

// limitsStatus shows a user's limits: the effective ones (0: unlimited),
// the user's own overrides (null: the role's default) and today's use.
type limitsStatus struct {
	RequestsPerMinute int64          `json:"requests_per_minute"`
	TokensPerDay      int64          `json:"tokens_per_day"`
	TokensUsedToday   int64          `json:"tokens_used_today"`
	Overrides         limitOverrides `json:"overrides"`
}

type limitOverrides struct {
	RequestsPerMinute *int64 `json:"requests_per_minute"`
	TokensPerDay      *int64 `json:"tokens_per_day"`
}

func (s *Server) limitsStatus(u *store.User) (limitsStatus, error) {
	l := s.limitsFor(u)
	used, err := s.tokensToday(u.ID, s.cfg.Now())
	st := limitsStatus{RequestsPerMinute: l.RequestsPerMinute, TokensPerDay: l.TokensPerDay, TokensUsedToday: used}
	if u.Limits != nil {
		st.Overrides = limitOverrides{RequestsPerMinute: u.Limits.RequestsPerMinute, TokensPerDay: u.Limits.TokensPerDay}
	}
	return st, err
}

// userLimits is GET /admin/users/{user_id}/limits.
func (s *Server) userLimits(c *fiber.Ctx) error {
	id, err := pathID(c, "user_id")
	if err != nil {
		return err
	}
	u, err := s.db.UserByID(id)
	if err != nil {
		return userError(err)
	}
	st, err := s.limitsStatus(u)
	if err != nil {
		return err
	}
	return c.JSON(st)
}

// setUserLimits is PUT /admin/users/{user_id}/limits
// {requests_per_minute, tokens_per_day}: each a number (0: unlimited), or
// null or absent for the role's default. It replaces both overrides and
// leaves the user's sessions alone.
func (s *Server) setUserLimits(c *fiber.Ctx) error {
	id, err := pathID(c, "user_id")
	if err != nil {
		return err
	}
	b, err := parseJSON(c)
	if err != nil {
		return err
	}
	b.dropNulls()
	var next store.Limits
	if b.has(limitRequestsPerMinute) {
		v := int64(b.integer(limitRequestsPerMinute, 0, 0, 1_000_000))
		next.RequestsPerMinute = &v
	}
	if b.has(limitTokensPerDay) {
		v := int64(b.integer(limitTokensPerDay, 0, 0, 1<<50))
		next.TokensPerDay = &v
	}
	if err := b.err(); err != nil {
		return err
	}
	u, err := s.db.UpdateUser(id, func(u *store.User) error {
		u.Limits = &next
		if next.RequestsPerMinute == nil && next.TokensPerDay == nil {
			u.Limits = nil
		}
		return nil
	})
	if err != nil {
		return userError(err)
	}
	s.audit(c, slog.LevelInfo, "user.limits", currentUser(c), u.Username, map[string]any{
		"user_id": u.ID, limitRequestsPerMinute: next.RequestsPerMinute, limitTokensPerDay: next.TokensPerDay})
	st, err := s.limitsStatus(u)
	if err != nil {
		return err
	}
	return c.JSON(st)
}
