package postgres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"gpt2d/store"
)

// CreateAPIKey stores k, assigning k.ID. The owner's row is locked first,
// so that concurrent creations for one user count each other:
// store.ErrNotFound for a missing owner, store.ErrTooManyKeys at
// store.MaxKeysPerUser.
func (db *DB) CreateAPIKey(k *store.APIKey) error {
	if len(k.Hash) == 0 {
		return errors.New("store: API key without hash")
	}
	return db.inTx("create api key", func(ctx context.Context, tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, k.UserID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE user_id = $1`, k.UserID).Scan(&n); err != nil {
			return err
		}
		if n >= store.MaxKeysPerUser {
			return store.ErrTooManyKeys
		}
		if err := tx.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('api_keys', 'id'))`).Scan(&k.ID); err != nil {
			return err
		}
		data, err := json.Marshal(k)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO api_keys (id, user_id, hash, data) VALUES ($1, $2, $3, $4)`, k.ID, k.UserID, k.Hash, data)
		return err
	})
}

// APIKeyByHash returns the key whose SHA-256 is hash, or store.ErrNotFound.
// A key found is served from the cache when it can (see cache); a key
// not found is never cached, so that guessing cannot fill memory.
func (db *DB) APIKeyByHash(hash []byte) (*store.APIKey, error) {
	var epoch uint64
	var at time.Time
	if db.cache != nil {
		if k, ok := db.cache.key(hash); ok {
			return k, nil
		}
		epoch, at = db.cache.begin(), db.cache.now()
	}
	ctx, cancel := db.ctx()
	defer cancel()
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT id, hash, data FROM api_keys WHERE hash = $1`, hash))
	if err != nil {
		return nil, wrap("api key", err)
	}
	if db.cache != nil {
		db.cache.putKey(k, epoch, at)
	}
	return k, nil
}

// APIKeys returns the keys of a user in creation order.
func (db *DB) APIKeys(userID uint64) ([]store.APIKey, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT id, hash, data FROM api_keys WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, wrap("api keys", err)
	}
	keys := []store.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			rows.Close()
			return nil, wrap("api keys", err)
		}
		keys = append(keys, *k)
	}
	return keys, wrap("api keys", rows.Err())
}

// DeleteAPIKey removes key id of user userID; a key of another user is
// store.ErrNotFound.
func (db *DB) DeleteAPIKey(userID, id uint64) error {
	ctx, cancel := db.ctx()
	defer cancel()
	var hash []byte
	err := db.pool.QueryRow(ctx, `DELETE FROM api_keys WHERE id = $1 AND user_id = $2 RETURNING hash`, id, userID).Scan(&hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return wrap("delete api key", err)
	}
	db.forget("key:" + hex.EncodeToString(hash))
	return nil
}

// TouchAPIKeys records the last use of several keys in one transaction,
// locking them in id order (so that two replicas flushing at once cannot
// deadlock). Deleted keys are skipped; a time never moves backwards.
func (db *DB) TouchAPIKeys(used map[uint64]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]uint64, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return db.inTx("touch api keys", func(ctx context.Context, tx pgx.Tx) error {
		for _, id := range ids {
			k, err := scanKey(tx.QueryRow(ctx, `SELECT id, hash, data FROM api_keys WHERE id = $1 FOR UPDATE`, id))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			t := used[id]
			if k.LastUsedAt != nil && !t.After(*k.LastUsedAt) {
				continue
			}
			t = t.UTC()
			k.LastUsedAt = &t
			data, err := json.Marshal(k)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE api_keys SET data = $2 WHERE id = $1`, id, data); err != nil {
				return err
			}
		}
		return nil
	})
}

// scanKey reads (id, hash, data) into an APIKey; no row is
// store.ErrNotFound.
func scanKey(row pgx.Row) (*store.APIKey, error) {
	var id uint64
	var hash, data []byte
	if err := row.Scan(&id, &hash, &data); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, store.ErrNotFound
		}
		return nil, err
	}
	var k store.APIKey
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("api key %d: %w", id, err)
	}
	k.ID, k.Hash = id, hash
	return &k, nil
}
