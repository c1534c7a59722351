package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"gpt2d/store"
)

var _ store.QuotaStore = (*DB)(nil)

// lockQuota is the class of the transaction-scoped advisory locks that
// serialise one user's reservations and settlements (the object is the
// user id): a reservation reads spent and reserved tokens in two
// statements, and must not see a settlement between them.
const lockQuota int32 = 0x67707432

// ReserveTokens implements store.QuotaStore: under the user's advisory
// lock, the day's stored usage plus the live reservations are compared
// with limit and, if under it, a reservation row is added that expires
// after hold. Expired reservations of the user are deleted on the way.
func (db *DB) ReserveTokens(user uint64, at time.Time, n, limit int64, hold time.Duration) (store.Reservation, int64, bool, error) {
	day := store.Day(at)
	var r store.Reservation
	var used int64
	var ok bool
	err := db.inTx("reserve tokens", func(ctx context.Context, tx pgx.Tx) error {
		ok = false
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2::bigint::int)`, lockQuota, int64(user&0x7fffffff)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM quota_reservations WHERE user_id = $1 AND expires_at <= now()`, user); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT
	coalesce((SELECT sum(prompt_tokens + completion_tokens) FROM usage WHERE user_id = $1 AND day = $2), 0)::bigint +
	coalesce((SELECT sum(tokens) FROM quota_reservations WHERE user_id = $1 AND day = $2), 0)::bigint`,
			user, day).Scan(&used); err != nil {
			return err
		}
		if used >= limit {
			return nil
		}
		r = store.Reservation{UserID: user, Day: day, Tokens: n}
		ok = true
		return tx.QueryRow(ctx, `INSERT INTO quota_reservations (user_id, day, tokens, expires_at)
VALUES ($1, $2, $3, now() + $4::interval) RETURNING id`, user, day, n, hold).Scan(&r.ID)
	})
	if err != nil {
		return store.Reservation{}, 0, false, err
	}
	if !ok {
		return store.Reservation{}, used, false, nil
	}
	return r, used, true, nil
}

// SettleTokens implements store.QuotaStore: in one transaction under the
// user's advisory lock, spent is added to the usage table and r's row
// deleted.
func (db *DB) SettleTokens(r store.Reservation, spent store.Usage) error {
	user := r.UserID
	if r.ID == 0 {
		user = spent.UserID
	}
	return db.inTx("settle tokens", func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2::bigint::int)`, lockQuota, int64(user&0x7fffffff)); err != nil {
			return err
		}
		if spent.Counts != (store.Counts{}) {
			if _, err := tx.Exec(ctx, `
INSERT INTO usage (user_id, day, key_id, requests, prompt_tokens, completion_tokens) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id, day, key_id) DO UPDATE SET
	requests = usage.requests + excluded.requests,
	prompt_tokens = usage.prompt_tokens + excluded.prompt_tokens,
	completion_tokens = usage.completion_tokens + excluded.completion_tokens`,
				spent.UserID, store.Day(spent.Day), spent.KeyID, spent.Requests, spent.PromptTokens, spent.CompletionTokens); err != nil {
				return err
			}
		}
		if r.ID != 0 {
			_, err := tx.Exec(ctx, `DELETE FROM quota_reservations WHERE id = $1`, r.ID)
			return err
		}
		return nil
	})
}
