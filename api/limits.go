package api

import (
	"fmt"
	"log/slog"
	"strconv"
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
	// TokensPerDay bounds prompt plus completion tokens per UTC day. A
	// request reserves the most it may spend before it starts and settles
	// when it ends (see tokenQuota), so concurrent requests overshoot it
	// by at most one request's reservation.
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
	return s.quota.Spent(user, now)
}

// limitConcurrentSequences names Config.MaxUserSequences in a 429 body.
const limitConcurrentSequences = "concurrent_sequences"

// admit applies the caller's limits to a generation of seqs engine
// sequences that may spend up to tokens (prompt + completion) tokens: a
// 429 with Retry-After and the limit's name when one is reached. Else it
// holds the sequences and the tokens in who until finish releases them
// (or unadmit, when the generation never starts), and counts the request
// against the per-minute limit.
func (s *Server) admit(who *caller, tokens int64, seqs int) error {
	lim := s.limitsFor(who.user)
	now := s.cfg.Now()
	if !s.seqs.acquire(who.user.ID, seqs, s.maxUserSequences()) {
		s.tel.rateLimited.inc(limitConcurrentSequences)
		return rateLimited(limitConcurrentSequences, int64(s.maxUserSequences()),
			fmt.Sprintf("Too many generations in progress: at most %d sequences of one user at a time", s.maxUserSequences()),
			time.Second)
	}
	who.seqs = seqs
	s.gens.add() // done in settle, by finish or unadmit
	if lim.TokensPerDay > 0 {
		r, used, ok, err := s.quota.Reserve(who.user.ID, now, tokens, lim.TokensPerDay)
		if err != nil || !ok {
			s.unadmit(who)
		}
		if err != nil {
			return err
		}
		if !ok {
			s.tel.rateLimited.inc(limitTokensPerDay)
			s.log.Debug("daily token quota reached", "user_id", who.user.ID, "used_and_reserved", used)
			return rateLimited(limitTokensPerDay, lim.TokensPerDay,
				fmt.Sprintf("Daily token limit reached: %d tokens per day; it resets at midnight UTC", lim.TokensPerDay),
				store.Day(now).AddDate(0, 0, 1).Sub(now))
		}
		who.quota = r
	}
	if lim.RequestsPerMinute > 0 {
		wait, err := s.requests.Take(who.user.ID, lim.RequestsPerMinute, now)
		if err != nil {
			s.unadmit(who)
			return err
		}
		if wait > 0 {
			s.unadmit(who)
			s.tel.rateLimited.inc(limitRequestsPerMinute)
			return rateLimited(limitRequestsPerMinute, lim.RequestsPerMinute,
				fmt.Sprintf("Rate limit reached: %d requests per minute", lim.RequestsPerMinute), wait)
		}
	}
	return nil
}

// admitRequest applies the caller's limits to a request that runs no
// generation (tokenizing): it counts against the request rate, and is
// refused once the day's tokens are spent, but holds nothing.
func (s *Server) admitRequest(who caller) error {
	if err := s.admit(&who, 0, 0); err != nil {
		return err
	}
	s.unadmit(&who)
	return nil
}

// unadmit releases what admit holds for a generation that does not start.
func (s *Server) unadmit(who *caller) {
	s.settle(who, store.Counts{})
}

// settle replaces what admit holds by what the generation spent.
func (s *Server) settle(who *caller, spent store.Counts) {
	s.seqs.release(who.user.ID, who.seqs)
	s.quota.Settle(who.quota, who.user.ID, who.keyID(), s.cfg.Now(), spent)
	who.quota, who.seqs = reservation{}, 0
	s.gens.done()
}

// maxUserSequences is Config.MaxUserSequences, or half the engine's slots
// (at least one) when it is 0.
func (s *Server) maxUserSequences() int {
	if n := s.cfg.MaxUserSequences; n != 0 {
		return max(n, 0)
	}
	if g := s.generator(); g != nil {
		return max(g.Stats().Slots/2, 1)
	}
	return 1
}

func rateLimited(limit string, value int64, msg string, wait time.Duration) *httpError {
	he := retryLater(fiber.StatusTooManyRequests, msg, wait)
	he.code = "rate_limit_exceeded"
	retry, _ := strconv.Atoi(he.headers[fiber.HeaderRetryAfter])
	he.extra = map[string]any{"limit": limit, "limit_value": value, "retry_after": retry}
	return he
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
	u, err := s.pathUser(c)
	if err != nil {
		return err
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
