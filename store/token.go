package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors returned by the refresh-token methods.
var (
	// ErrTokenReused reports that a refresh token was presented after it
	// had been rotated or revoked; its whole family has been revoked.
	ErrTokenReused = errors.New("store: refresh token reused; family revoked")
	// ErrTokenExpired reports a refresh token past its expiry.
	ErrTokenExpired = errors.New("store: refresh token expired")
)

// RefreshToken is the stored record of one opaque refresh token. Only the
// SHA-256 of the token is kept (the key); the token itself is never stored.
// Tokens obtained by rotating one another form a family.
type RefreshToken struct {
	Hash      []byte    `json:"-"`
	UserID    uint64    `json:"user_id"`
	Family    string    `json:"family"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Used is set when the token has been rotated or revoked; presenting a
	// used token again is reuse.
	Used bool `json:"used,omitempty"`
}

// PutRefreshToken stores a new refresh token record. It also drops records
// that expired before now, which keeps the bucket bounded by the number of
// live tokens.
func (db *DB) PutRefreshToken(t *RefreshToken, now time.Time) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if err := deleteRefreshWhere(tx, func(r *RefreshToken) bool { return now.After(r.ExpiresAt) }); err != nil {
			return err
		}
		return putRefresh(tx.Bucket(bucketRefresh), t)
	})
}

// RotateRefreshToken consumes the token whose hash is oldHash and stores
// next in its family, in one write transaction. next.Family and
// next.UserID are filled from the old record; the old record is returned.
//
// Presenting a token that was already used revokes every token of its
// family and returns ErrTokenReused: a stolen token that is replayed after
// the legitimate client rotated it (or vice versa) ends the session for
// both. An unknown hash gives ErrNotFound, an expired token
// ErrTokenExpired.
func (db *DB) RotateRefreshToken(oldHash []byte, next *RefreshToken, now time.Time) (*RefreshToken, error) {
	var old *RefreshToken
	reused := false
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRefresh)
		v := b.Get(oldHash)
		if v == nil {
			return ErrNotFound
		}
		old = &RefreshToken{Hash: append([]byte(nil), oldHash...)}
		if err := json.Unmarshal(v, old); err != nil {
			return fmt.Errorf("refresh token: %w", err)
		}
		if old.Used {
			reused = true
			return deleteRefreshWhere(tx, func(r *RefreshToken) bool { return r.Family == old.Family })
		}
		if now.After(old.ExpiresAt) {
			return ErrTokenExpired
		}
		old.Used = true
		if err := putRefresh(b, old); err != nil {
			return err
		}
		next.UserID, next.Family = old.UserID, old.Family
		return putRefresh(b, next)
	})
	if err == nil && reused {
		return old, ErrTokenReused
	}
	return old, err
}

// RevokeRefreshTokens deletes every refresh token of the user.
func (db *DB) RevokeRefreshTokens(userID uint64) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return deleteRefreshWhere(tx, func(r *RefreshToken) bool { return r.UserID == userID })
	})
}

// deleteRefreshWhere deletes the records matching pred. It scans the whole
// bucket: refresh operations are rare next to requests, and the bucket
// holds only live tokens.
func deleteRefreshWhere(tx *bolt.Tx, pred func(*RefreshToken) bool) error {
	b := tx.Bucket(bucketRefresh)
	var doomed [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var r RefreshToken
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("refresh token: %w", err)
		}
		if pred(&r) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func putRefresh(b *bolt.Bucket, t *RefreshToken) error {
	if len(t.Hash) == 0 {
		return errors.New("refresh token without hash")
	}
	v, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return b.Put(t.Hash, v)
}
