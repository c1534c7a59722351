package postgres

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"gpt2d/store"
)

// AddUsage adds every record's counts to the stored ones of the same
// user, UTC day and key with atomic upserts, in one transaction. Rows are
// written in key order, so replicas flushing at once cannot deadlock.
func (db *DB) AddUsage(records []store.Usage) error {
	if len(records) == 0 {
		return nil
	}
	rs := make([]store.Usage, len(records))
	for i, r := range records {
		r.Day = store.Day(r.Day)
		rs[i] = r
	}
	slices.SortFunc(rs, func(a, b store.Usage) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), a.Day.Compare(b.Day), cmp.Compare(a.KeyID, b.KeyID))
	})
	return db.inTx("add usage", func(ctx context.Context, tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, r := range rs {
			b.Queue(`
INSERT INTO usage (user_id, day, key_id, requests, prompt_tokens, completion_tokens) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id, day, key_id) DO UPDATE SET
	requests = usage.requests + excluded.requests,
	prompt_tokens = usage.prompt_tokens + excluded.prompt_tokens,
	completion_tokens = usage.completion_tokens + excluded.completion_tokens`,
				r.UserID, r.Day, r.KeyID, r.Requests, r.PromptTokens, r.CompletionTokens)
		}
		return tx.SendBatch(ctx, b).Close()
	})
}

// UsageOf returns the records of one user from day from to day to
// (inclusive, UTC), in date then key order.
func (db *DB) UsageOf(userID uint64, from, to time.Time) ([]store.Usage, error) {
	return db.usage("usage of user", `SELECT user_id, day, key_id, requests, prompt_tokens, completion_tokens FROM usage
WHERE user_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day, key_id`, userID, store.Day(from), store.Day(to))
}

// AllUsage returns every user's records from day from to day to
// (inclusive, UTC), in user, date and key order.
func (db *DB) AllUsage(from, to time.Time) ([]store.Usage, error) {
	return db.usage("all usage", `SELECT user_id, day, key_id, requests, prompt_tokens, completion_tokens FROM usage
WHERE day BETWEEN $1 AND $2 ORDER BY user_id, day, key_id`, store.Day(from), store.Day(to))
}

func (db *DB) usage(op, sql string, args ...any) ([]store.Usage, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	rows, err := db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	out := []store.Usage{}
	for rows.Next() {
		var u store.Usage
		if err := rows.Scan(&u.UserID, &u.Day, &u.KeyID, &u.Requests, &u.PromptTokens, &u.CompletionTokens); err != nil {
			return nil, wrap(op, err)
		}
		u.Day = store.Day(u.Day)
		out = append(out, u)
	}
	return out, wrap(op, rows.Err())
}

// DayTokens returns the tokens (prompt and completion) a user spent on
// the UTC day of t, over all credentials.
func (db *DB) DayTokens(userID uint64, t time.Time) (int64, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint FROM usage
WHERE user_id = $1 AND day = $2`, userID, store.Day(t)).Scan(&n)
	return n, wrap("day tokens", err)
}
