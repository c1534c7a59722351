package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// RefreshToken is the live token of a refresh-token family: the tokens
// obtained from one login by rotating one another. Only the SHA-256 of the
// token is kept; the token itself is never stored.
//
// Layout: a family is one record, keyed user id | family id in
// bucketFamilies, so that a user's families are adjacent (revoking them
// reads only that user's records); bucketRefreshes maps the hash of each
// family's live token to that key. Rotating replaces the family's record
// in place, so a family costs the same two records after one refresh or
// ten thousand. Used tokens are not kept: a presented token whose hash is
// not live but that names a live family (see RotateRefreshToken) is a
// replay of a used one.
type RefreshToken struct {
	Hash   []byte `json:"hash"`
	UserID uint64 `json:"-"` // in the key
	Family string `json:"-"` // in the key
	// StartedAt is when the family began (the login); CreatedAt when this
	// token was issued.
	StartedAt time.Time `json:"started_at"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func familyKey(user uint64, family string) []byte {
	return append(itob(user), family...)
}

// PutRefreshToken starts a new family whose first token is t. In the same
// write transaction it drops the user's expired families and, when the
// user would have more than maxFamilies live families (0: no cap), the
// oldest ones (by StartedAt): a user's sessions are bounded, and the
// newest login always succeeds. It returns how many live families were
// evicted.
func (db *DB) PutRefreshToken(t *RefreshToken, maxFamilies int, now time.Time) (evicted int, err error) {
	if len(t.Hash) == 0 || t.Family == "" {
		return 0, errors.New("store: refresh token without hash or family")
	}
	if t.StartedAt.IsZero() {
		t.StartedAt = t.CreatedAt
	}
	err = db.update(func(tx *bolt.Tx) error {
		evicted = 0
		fams, err := familiesOf(tx, t.UserID)
		if err != nil {
			return err
		}
		var live []*RefreshToken
		for _, f := range fams {
			if now.After(f.ExpiresAt) {
				if err := deleteFamily(tx, f); err != nil {
					return err
				}
				continue
			}
			live = append(live, f)
		}
		if maxFamilies > 0 && len(live) >= maxFamilies {
			slices.SortFunc(live, func(a, b *RefreshToken) int { return a.StartedAt.Compare(b.StartedAt) })
			for _, f := range live[:len(live)-maxFamilies+1] {
				if err := deleteFamily(tx, f); err != nil {
					return err
				}
				evicted++
			}
		}
		return putFamily(tx, t)
	})
	return evicted, err
}

// RotateRefreshToken consumes the live token whose hash is oldHash and
// makes next the live token of its family, in one write transaction.
// next.UserID, next.Family and next.StartedAt are filled from the old
// record, which is returned.
//
// user and family are the family the presented token names (auth puts
// them in the token; zero values for tokens that name none). When oldHash
// is not a live token but that family is live, the token is a used one
// presented again: the family is revoked and ErrTokenReused returned — a
// stolen token replayed after the legitimate client rotated it (or vice
// versa) ends the session for both. An unknown token gives ErrNotFound,
// an expired one ErrTokenExpired (and its family is dropped).
func (db *DB) RotateRefreshToken(oldHash []byte, user uint64, family string, next *RefreshToken, now time.Time) (*RefreshToken, error) {
	var old *RefreshToken
	reused, expired := false, false
	err := db.update(func(tx *bolt.Tx) error {
		reused, expired = false, false
		key := tx.Bucket(bucketRefreshes).Get(oldHash)
		if key == nil {
			if family == "" {
				return ErrNotFound
			}
			f, err := getFamily(tx, familyKey(user, family))
			if err != nil {
				return err
			}
			old, reused = f, true
			return deleteFamily(tx, f)
		}
		f, err := getFamily(tx, key)
		if err != nil {
			return err
		}
		old = f
		if now.After(f.ExpiresAt) {
			expired = true
			return deleteFamily(tx, f)
		}
		if err := tx.Bucket(bucketRefreshes).Delete(oldHash); err != nil {
			return err
		}
		next.UserID, next.Family, next.StartedAt = f.UserID, f.Family, f.StartedAt
		return putFamily(tx, next)
	})
	switch {
	case err != nil:
		return old, err
	case reused:
		return old, ErrTokenReused
	case expired:
		return old, ErrTokenExpired
	}
	return old, nil
}

// RefreshTokenByHash returns the live token whose hash is hash, or
// ErrNotFound. It is a read: auth uses it to learn whose token it is
// before spending that user's refresh budget.
func (db *DB) RefreshTokenByHash(hash []byte) (*RefreshToken, error) {
	var t *RefreshToken
	err := db.bolt.View(func(tx *bolt.Tx) error {
		key := tx.Bucket(bucketRefreshes).Get(hash)
		if key == nil {
			return ErrNotFound
		}
		var err error
		t, err = getFamily(tx, key)
		return err
	})
	return t, err
}

// RevokeRefreshTokens deletes every refresh-token family of the user. It
// reads only that user's records (at most the family cap, plus expired
// ones not yet pruned).
func (db *DB) RevokeRefreshTokens(userID uint64) error {
	return db.update(func(tx *bolt.Tx) error { return deleteFamiliesOf(tx, userID) })
}

// CountRefreshFamilies returns the number of live families of the user.
func (db *DB) CountRefreshFamilies(userID uint64, now time.Time) (int, error) {
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		fams, err := familiesOf(tx, userID)
		for _, f := range fams {
			if !now.After(f.ExpiresAt) {
				n++
			}
		}
		return err
	})
	return n, err
}

// PruneRefreshTokens deletes the families of every user whose live token
// expired before now, and returns how many. It scans the whole bucket
// (bounded by users × the family cap) in one write transaction; the
// server runs it in the background.
func (db *DB) PruneRefreshTokens(now time.Time) (int, error) {
	n := 0
	err := db.update(func(tx *bolt.Tx) error {
		n = 0
		var doomed []*RefreshToken
		err := tx.Bucket(bucketFamilies).ForEach(func(k, v []byte) error {
			f, err := parseFamily(k, v)
			if err != nil {
				return err
			}
			if now.After(f.ExpiresAt) {
				doomed = append(doomed, f)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, f := range doomed {
			if err := deleteFamily(tx, f); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	return n, err
}

func deleteFamiliesOf(tx *bolt.Tx, userID uint64) error {
	fams, err := familiesOf(tx, userID)
	if err != nil {
		return err
	}
	for _, f := range fams {
		if err := deleteFamily(tx, f); err != nil {
			return err
		}
	}
	return nil
}

// familiesOf reads the user's families: a range of adjacent keys.
func familiesOf(tx *bolt.Tx, userID uint64) ([]*RefreshToken, error) {
	var out []*RefreshToken
	prefix := itob(userID)
	c := tx.Bucket(bucketFamilies).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		f, err := parseFamily(k, v)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func getFamily(tx *bolt.Tx, key []byte) (*RefreshToken, error) {
	v := tx.Bucket(bucketFamilies).Get(key)
	if v == nil {
		return nil, ErrNotFound
	}
	return parseFamily(key, v)
}

func parseFamily(k, v []byte) (*RefreshToken, error) {
	if len(k) <= 8 {
		return nil, fmt.Errorf("refresh family key %x: too short", k)
	}
	f := &RefreshToken{UserID: btoi(k[:8]), Family: string(k[8:])}
	if err := json.Unmarshal(v, f); err != nil {
		return nil, fmt.Errorf("refresh family %x: %w", k, err)
	}
	return f, nil
}

// putFamily stores t as its family's live token and indexes its hash.
func putFamily(tx *bolt.Tx, t *RefreshToken) error {
	if len(t.Hash) == 0 {
		return errors.New("refresh token without hash")
	}
	key := familyKey(t.UserID, t.Family)
	v, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketFamilies).Put(key, v); err != nil {
		return err
	}
	return tx.Bucket(bucketRefreshes).Put(t.Hash, key)
}

// deleteFamily removes a family and the index entry of its live token.
func deleteFamily(tx *bolt.Tx, f *RefreshToken) error {
	if err := tx.Bucket(bucketRefreshes).Delete(f.Hash); err != nil {
		return err
	}
	return tx.Bucket(bucketFamilies).Delete(familyKey(f.UserID, f.Family))
}
