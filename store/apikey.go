package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrTooManyKeys reports a user at MaxKeysPerUser asking for another key.
var ErrTooManyKeys = errors.New("store: too many API keys")

// MaxKeysPerUser bounds the API keys one user may hold, so that a user
// cannot grow the store without bound.
const MaxKeysPerUser = 100

// Scope is a right an API key carries. A key never has more rights than
// its owner: the admin scope of a key whose owner is not an admin grants
// nothing.
type Scope string

// The scopes an API key can have.
const (
	ScopeGenerate Scope = "generate" // text generation and the model list
	ScopeAdmin    Scope = "admin"    // the /admin routes and /metrics
)

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool { return s == ScopeGenerate || s == ScopeAdmin }

// APIKey is the stored record of one API key. Only the SHA-256 of the key
// is kept; the key itself is shown to its owner once, at creation.
type APIKey struct {
	ID     uint64 `json:"id"`
	UserID uint64 `json:"user_id"`
	Name   string `json:"name"`
	// Prefix is the key's first characters, to tell keys apart in lists.
	Prefix     string     `json:"prefix"`
	Hash       []byte     `json:"hash"`
	Scopes     []Scope    `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// Has reports whether the key carries scope s.
func (k *APIKey) Has(s Scope) bool { return slices.Contains(k.Scopes, s) }

// CreateAPIKey stores k, assigning k.ID. It fails with ErrNotFound if the
// owner does not exist and ErrTooManyKeys if the owner already holds
// MaxKeysPerUser keys; both checks and the insert are one transaction.
func (db *DB) CreateAPIKey(k *APIKey) error {
	if len(k.Hash) == 0 {
		return errors.New("store: API key without hash")
	}
	return db.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketUsers).Get(itob(k.UserID)) == nil {
			return ErrNotFound
		}
		n := 0
		if err := eachKey(tx, func(o *APIKey) error {
			if o.UserID == k.UserID {
				n++
			}
			return nil
		}); err != nil {
			return err
		}
		if n >= MaxKeysPerUser {
			return ErrTooManyKeys
		}
		keys := tx.Bucket(bucketKeys)
		id, err := keys.NextSequence()
		if err != nil {
			return err
		}
		k.ID = id
		if err := putKey(keys, k); err != nil {
			return err
		}
		return tx.Bucket(bucketKeyHashes).Put(k.Hash, itob(id))
	})
}

// APIKeyByHash returns the key whose SHA-256 is hash, or ErrNotFound.
func (db *DB) APIKeyByHash(hash []byte) (*APIKey, error) {
	var k *APIKey
	err := db.bolt.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketKeyHashes).Get(hash)
		if id == nil {
			return ErrNotFound
		}
		var err error
		k, err = getKey(tx.Bucket(bucketKeys), btoi(id))
		return err
	})
	return k, err
}

// APIKeys returns the keys of a user in creation order.
func (db *DB) APIKeys(userID uint64) ([]APIKey, error) {
	keys := []APIKey{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return eachKey(tx, func(k *APIKey) error {
			if k.UserID == userID {
				keys = append(keys, *k)
			}
			return nil
		})
	})
	return keys, err
}

// DeleteAPIKey removes the key id of user userID. A key of another user
// is reported as ErrNotFound, like a key that does not exist.
func (db *DB) DeleteAPIKey(userID, id uint64) error {
	return db.update(func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketKeys)
		k, err := getKey(keys, id)
		if err != nil {
			return err
		}
		if k.UserID != userID {
			return ErrNotFound
		}
		return deleteKey(tx, k)
	})
}

// TouchAPIKeys records the last use of several keys in one transaction.
// Keys deleted meanwhile are skipped; a time never moves backwards.
func (db *DB) TouchAPIKeys(used map[uint64]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return db.update(func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketKeys)
		for id, t := range used {
			k, err := getKey(keys, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if k.LastUsedAt != nil && !t.After(*k.LastUsedAt) {
				continue
			}
			t := t.UTC()
			k.LastUsedAt = &t
			if err := putKey(keys, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteKeysOf removes every key of a user (when the user is deleted).
func deleteKeysOf(tx *bolt.Tx, userID uint64) error {
	var doomed []*APIKey
	if err := eachKey(tx, func(k *APIKey) error {
		if k.UserID == userID {
			doomed = append(doomed, k)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range doomed {
		if err := deleteKey(tx, k); err != nil {
			return err
		}
	}
	return nil
}

func deleteKey(tx *bolt.Tx, k *APIKey) error {
	if err := tx.Bucket(bucketKeys).Delete(itob(k.ID)); err != nil {
		return err
	}
	return tx.Bucket(bucketKeyHashes).Delete(k.Hash)
}

// eachKey calls fn for every stored key. It scans the whole bucket: keys
// are few (MaxKeysPerUser per user) and listed or created rarely; the
// per-request lookup goes through the hash index instead.
func eachKey(tx *bolt.Tx, fn func(*APIKey) error) error {
	return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
		var key APIKey
		if err := json.Unmarshal(v, &key); err != nil {
			return fmt.Errorf("api key %d: %w", btoi(k), err)
		}
		return fn(&key)
	})
}

func getKey(keys *bolt.Bucket, id uint64) (*APIKey, error) {
	v := keys.Get(itob(id))
	if v == nil {
		return nil, ErrNotFound
	}
	var k APIKey
	if err := json.Unmarshal(v, &k); err != nil {
		return nil, fmt.Errorf("api key %d: %w", id, err)
	}
	return &k, nil
}

func putKey(keys *bolt.Bucket, k *APIKey) error {
	v, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return keys.Put(itob(k.ID), v)
}
