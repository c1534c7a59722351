package api

import (
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"gpt2d/store"
)

// usageTotals is a Counts as the API shows it.
type usageTotals struct {
	Requests         int64 `json:"requests"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

func showCounts(c store.Counts) usageTotals {
	return usageTotals{Requests: c.Requests, PromptTokens: c.PromptTokens, CompletionTokens: c.CompletionTokens, TotalTokens: c.Tokens()}
}

type usageDay struct {
	Date string `json:"date"`
	usageTotals
}

type usageCredential struct {
	KeyID  uint64 `json:"key_id"` // 0: sessions (access tokens)
	Name   string `json:"name,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	usageTotals
}

type userUsage struct {
	UserID   uint64            `json:"user_id"`
	Username string            `json:"username,omitempty"`
	From     string            `json:"from"`
	To       string            `json:"to"`
	Total    usageTotals       `json:"total"`
	Days     []usageDay        `json:"days"`
	Keys     []usageCredential `json:"keys"`
	Limits   *limitsStatus     `json:"limits,omitempty"`
}

const dateLayout = "2006-01-02"

// usageRange reads the from and to query parameters (YYYY-MM-DD, UTC,
// inclusive); the default is the last 30 days, today included.
func (s *Server) usageRange(c *fiber.Ctx) (from, to time.Time, err error) {
	today := store.Day(s.cfg.Now())
	parse := func(name string, def time.Time) (time.Time, error) {
		v := c.Query(name)
		if v == "" {
			return def, nil
		}
		t, err := time.Parse(dateLayout, v)
		if err != nil {
			return time.Time{}, invalid(fieldError{Loc: []any{"query", name}, Type: "date_from_datetime_parsing",
				Msg: "Input should be a valid date in the format YYYY-MM-DD"})
		}
		return t, nil
	}
	if to, err = parse("to", today); err != nil {
		return
	}
	if from, err = parse("from", to.AddDate(0, 0, -29)); err != nil {
		return
	}
	if from.After(to) || to.Sub(from) > 366*24*time.Hour {
		err = invalid(fieldError{Loc: []any{"query", "from"}, Type: "value_error",
			Msg: "Value error, from must not be after to, and the range at most 366 days"})
	}
	return
}

// tally sums usage counts per key, keeping the keys in the order they
// were first seen.
type tally[K comparable] struct {
	keys []K
	sums map[K]*store.Counts
}

// add adds c to k's sum.
func (t *tally[K]) add(k K, c store.Counts) {
	if t.sums == nil {
		t.sums = map[K]*store.Counts{}
	}
	sum := t.sums[k]
	if sum == nil {
		sum = &store.Counts{}
		t.sums[k] = sum
		t.keys = append(t.keys, k)
	}
	sum.Add(c)
}

// showDays renders per-day sums in date order (records come in date
// order per user, not across users).
func showDays(days *tally[time.Time]) []usageDay {
	slices.SortFunc(days.keys, time.Time.Compare)
	out := make([]usageDay, 0, len(days.keys))
	for _, d := range days.keys {
		out = append(out, usageDay{Date: d.Format(dateLayout), usageTotals: showCounts(*days.sums[d])})
	}
	return out
}

// summarize folds one user's records into totals per day and per
// credential. keys names the user's API keys (revoked ones stay as ids).
func summarize(userID uint64, from, to time.Time, records []store.Usage, keys []store.APIKey) userUsage {
	out := userUsage{UserID: userID, From: from.Format(dateLayout), To: to.Format(dateLayout), Days: []usageDay{}, Keys: []usageCredential{}}
	var total store.Counts
	var days tally[time.Time]
	var perKey tally[uint64]
	for _, r := range records {
		if r.UserID != userID {
			continue
		}
		total.Add(r.Counts)
		days.add(r.Day, r.Counts)
		perKey.add(r.KeyID, r.Counts)
	}
	out.Total = showCounts(total)
	out.Days = showDays(&days)
	names := map[uint64]store.APIKey{}
	for _, k := range keys {
		names[k.ID] = k
	}
	for _, id := range perKey.keys {
		uc := usageCredential{KeyID: id, usageTotals: showCounts(*perKey.sums[id])}
		if k, ok := names[id]; ok {
			uc.Name, uc.Prefix = k.Name, k.Prefix
		}
		out.Keys = append(out.Keys, uc)
	}
	return out
}

// myUsage is GET /users/me/usage?from=&to=: the caller's tokens per day
// and per credential, and their limits with today's consumption.
func (s *Server) myUsage(c *fiber.Ctx) error {
	from, to, err := s.usageRange(c)
	if err != nil {
		return err
	}
	return s.sendUserUsage(c, currentUser(c), from, to)
}

func (s *Server) sendUserUsage(c *fiber.Ctx, u *store.User, from, to time.Time) error {
	if err := s.usage.flush(); err != nil {
		return err
	}
	records, err := s.db.UsageOf(u.ID, from, to)
	if err != nil {
		return err
	}
	keys, err := s.db.APIKeys(u.ID)
	if err != nil {
		return err
	}
	out := summarize(u.ID, from, to, records, keys)
	out.Username = u.Username
	st, err := s.limitsStatus(u)
	if err != nil {
		return err
	}
	out.Limits = &st
	return c.JSON(out)
}

// adminUsage is GET /admin/usage?from=&to=&user_id=: every user's usage
// (totals per user, and per day over all users), or one user's in the
// detail of /users/me/usage.
func (s *Server) adminUsage(c *fiber.Ctx) error {
	from, to, err := s.usageRange(c)
	if err != nil {
		return err
	}
	if c.Query("user_id") != "" {
		id, err := queryInt(c, "user_id", 0, 1, 1<<62)
		if err != nil {
			return err
		}
		u, err := s.db.UserByID(uint64(id))
		if err != nil {
			return userError(err)
		}
		return s.sendUserUsage(c, u, from, to)
	}
	if err := s.usage.flush(); err != nil {
		return err
	}
	records, err := s.db.AllUsage(from, to)
	if err != nil {
		return err
	}
	type userTotal struct {
		UserID   uint64 `json:"user_id"`
		Username string `json:"username,omitempty"` // empty once the user is deleted
		usageTotals
	}
	out := struct {
		From  string      `json:"from"`
		To    string      `json:"to"`
		Total usageTotals `json:"total"`
		Days  []usageDay  `json:"days"`
		Users []userTotal `json:"users"`
	}{From: from.Format(dateLayout), To: to.Format(dateLayout), Days: []usageDay{}, Users: []userTotal{}}
	var total store.Counts
	var days tally[time.Time]
	var perUser tally[uint64]
	for _, r := range records {
		total.Add(r.Counts)
		days.add(r.Day, r.Counts)
		perUser.add(r.UserID, r.Counts)
	}
	out.Total = showCounts(total)
	out.Days = showDays(&days)
	for _, id := range perUser.keys { // records come in user order
		ut := userTotal{UserID: id, usageTotals: showCounts(*perUser.sums[id])}
		if u, err := s.db.UserByID(id); err == nil {
			ut.Username = u.Username
		}
		out.Users = append(out.Users, ut)
	}
	return c.JSON(out)
}
