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

// PutRefreshToken stores a new refresh token record and drops the records
// that expired before now, in one transaction.
func (db *DB) PutRefreshToken(t *store.RefreshToken, now time.Time) error {
	if len(t.Hash) == 0 {
		return errors.New("refresh token without hash")
	}
	return db.inTx("put refresh token", func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE expires_at < $1`, now); err != nil {
			return err
		}
		return putRefresh(ctx, tx, t)
	})
}

// RotateRefreshToken consumes the token whose hash is oldHash and stores
// next in its family. The old row stays locked from the read to the
// commit, so of two replicas rotating one token at once the second sees
// it used: that is reuse, and the whole family is revoked
// (store.ErrTokenReused), exactly as in the bbolt store.
func (db *DB) RotateRefreshToken(oldHash []byte, next *store.RefreshToken, now time.Time) (*store.RefreshToken, error) {
	var old *store.RefreshToken
	reused := false
	err := db.inTx("rotate refresh token", func(ctx context.Context, tx pgx.Tx) error {
		reused = false
		var data []byte
		err := tx.QueryRow(ctx, `SELECT data FROM refresh_tokens WHERE hash = $1 FOR UPDATE`, oldHash).Scan(&data)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		old = &store.RefreshToken{Hash: append([]byte(nil), oldHash...)}
		if err := json.Unmarshal(data, old); err != nil {
			return fmt.Errorf("refresh token: %w", err)
		}
		if old.Used {
			reused = true
			_, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE family = $1`, old.Family)
			return err
		}
		if now.After(old.ExpiresAt) {
			return store.ErrTokenExpired
		}
		old.Used = true
		if err := putRefresh(ctx, tx, old); err != nil {
			return err
		}
		next.UserID, next.Family = old.UserID, old.Family
		return putRefresh(ctx, tx, next)
	})
	if err == nil && reused {
		return old, store.ErrTokenReused
	}
	return old, err
}

// RevokeRefreshTokens deletes every refresh token of the user.
func (db *DB) RevokeRefreshTokens(userID uint64) error {
	ctx, cancel := db.ctx()
	defer cancel()
	_, err := db.pool.Exec(ctx, `DELETE FROM refresh_tokens WHERE user_id = $1`, userID)
	return wrap("revoke refresh tokens", err)
}

// putRefresh inserts or replaces the record of t.
func putRefresh(ctx context.Context, tx pgx.Tx, t *store.RefreshToken) error {
	if len(t.Hash) == 0 {
		return errors.New("refresh token without hash")
	}
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
INSERT INTO refresh_tokens (hash, user_id, family, expires_at, used, data) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, family = excluded.family,
	expires_at = excluded.expires_at, used = excluded.used, data = excluded.data`,
		t.Hash, t.UserID, t.Family, t.ExpiresAt, t.Used, data)
	return err
}
