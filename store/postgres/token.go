package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gpt2d/store"
)

// Refresh tokens live as one row per family (table refresh_families,
// keyed user_id, family), holding the hash of its live token: rotating
// updates the row in place, so a family costs one row however often it is
// refreshed, and revoking a user's sessions touches that user's rows only
// — the layout of the bbolt store (see store.RefreshToken).

// Columns hash, started_at and expires_at are what is looked up, ordered
// and pruned by; data holds the record as JSON, so its times keep their
// nanoseconds as in the bbolt store.
const familyColumns = `user_id, family, data`

func scanFamily(row pgx.Row) (*store.RefreshToken, error) {
	var t store.RefreshToken
	var user int64
	var data []byte
	err := row.Scan(&user, &t.Family, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("refresh family %d/%s: %w", user, t.Family, err)
	}
	t.UserID = uint64(user)
	return &t, nil
}

// PutRefreshToken starts a family with t. It locks the user's row first,
// so that concurrent logins of one user (on any replica) apply the cap
// one after another; then it drops the user's expired families and the
// oldest live ones beyond maxFamilies.
func (db *DB) PutRefreshToken(t *store.RefreshToken, maxFamilies int, now time.Time) (evicted int, err error) {
	if len(t.Hash) == 0 || t.Family == "" {
		return 0, errors.New("refresh token without hash or family")
	}
	if t.StartedAt.IsZero() {
		t.StartedAt = t.CreatedAt
	}
	err = db.inTx("put refresh token", func(ctx context.Context, tx pgx.Tx) error {
		evicted = 0
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, t.UserID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM refresh_families WHERE user_id = $1 AND expires_at < $2`, t.UserID, now); err != nil {
			return err
		}
		if maxFamilies > 0 {
			tag, err := tx.Exec(ctx, `
DELETE FROM refresh_families WHERE (user_id, family) IN (
	SELECT user_id, family FROM refresh_families WHERE user_id = $1
	ORDER BY started_at DESC, family DESC OFFSET $2)`, t.UserID, maxFamilies-1)
			if err != nil {
				return err
			}
			evicted = int(tag.RowsAffected())
		}
		data, err := json.Marshal(t)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO refresh_families (user_id, family, hash, started_at, expires_at, data) VALUES ($1, $2, $3, $4, $5, $6)`,
			t.UserID, t.Family, t.Hash, t.StartedAt, t.ExpiresAt, data)
		return err
	})
	return evicted, err
}

// RotateRefreshToken consumes the live token oldHash and makes next its
// family's live token. The family's row stays locked from the read to the
// commit, so of two replicas rotating one token at once the second finds
// the hash replaced: a token naming its family is then reuse, and the
// family is revoked (store.ErrTokenReused), exactly as in the bbolt store.
func (db *DB) RotateRefreshToken(oldHash []byte, user uint64, family string, next *store.RefreshToken, now time.Time) (*store.RefreshToken, error) {
	var old *store.RefreshToken
	reused, expired := false, false
	err := db.inTx("rotate refresh token", func(ctx context.Context, tx pgx.Tx) error {
		reused, expired = false, false
		var err error
		old, err = scanFamily(tx.QueryRow(ctx, `SELECT `+familyColumns+` FROM refresh_families WHERE hash = $1 FOR UPDATE`, oldHash))
		if errors.Is(err, store.ErrNotFound) && family != "" {
			old, err = scanFamily(tx.QueryRow(ctx, `DELETE FROM refresh_families WHERE user_id = $1 AND family = $2 RETURNING `+familyColumns, user, family))
			reused = err == nil
			return err
		}
		if err != nil {
			return err
		}
		if now.After(old.ExpiresAt) {
			expired = true
			_, err := tx.Exec(ctx, `DELETE FROM refresh_families WHERE user_id = $1 AND family = $2`, old.UserID, old.Family)
			return err
		}
		next.UserID, next.Family, next.StartedAt = old.UserID, old.Family, old.StartedAt
		data, err := json.Marshal(next)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE refresh_families SET hash = $3, expires_at = $4, data = $5 WHERE user_id = $1 AND family = $2`,
			old.UserID, old.Family, next.Hash, next.ExpiresAt, data)
		return err
	})
	switch {
	case err != nil:
		return old, err
	case reused:
		return old, store.ErrTokenReused
	case expired:
		return old, store.ErrTokenExpired
	}
	return old, nil
}

// RefreshTokenByHash returns the live token whose hash is hash.
func (db *DB) RefreshTokenByHash(hash []byte) (*store.RefreshToken, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	t, err := scanFamily(db.pool.QueryRow(ctx, `SELECT `+familyColumns+` FROM refresh_families WHERE hash = $1`, hash))
	return t, wrap("refresh token", err)
}

// RevokeRefreshTokens deletes every family of the user.
func (db *DB) RevokeRefreshTokens(userID uint64) error {
	ctx, cancel := db.ctx()
	defer cancel()
	_, err := db.pool.Exec(ctx, `DELETE FROM refresh_families WHERE user_id = $1`, userID)
	return wrap("revoke refresh tokens", err)
}

// CountRefreshFamilies returns the user's live families at now.
func (db *DB) CountRefreshFamilies(userID uint64, now time.Time) (int, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM refresh_families WHERE user_id = $1 AND expires_at >= $2`, userID, now).Scan(&n)
	return n, wrap("count refresh families", err)
}

// PruneRefreshTokens deletes every family expired at now.
func (db *DB) PruneRefreshTokens(now time.Time) (int, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	tag, err := db.pool.Exec(ctx, `DELETE FROM refresh_families WHERE expires_at < $1`, now)
	return int(tag.RowsAffected()), wrap("prune refresh tokens", err)
}
