package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// migrations[i] upgrades a file from schema version i to i+1. A step runs
// inside the same write transaction that records the new version, so a
// crash mid-migration leaves the file at the old version, and the step is
// retried on the next Open. Append steps; never edit a released one.
var migrations = []func(tx *bolt.Tx) error{
	// 0 → 1: the initial layout.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketUsers, bucketUsernames, bucketAudit} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	},
	// 1 → 2: refresh tokens, one record per token keyed by its hash
	// (replaced in schema 4).
	func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("refresh"))
		return err
	},
	// 2 → 3: API keys and token usage.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketKeys, bucketKeyHashes, bucketUsage} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	},
	// 3 → 4: refresh tokens by family. The old bucket kept one record per
	// token ever issued (used ones until expiry) keyed by hash, so
	// revoking a user's tokens decoded every user's; families are now one
	// record each, keyed by user (see RefreshToken). Live unused tokens
	// move over and keep working; used and expired ones are dropped, so a
	// token used before the upgrade and replayed after it is unknown
	// rather than reuse.
	func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketFamilies, bucketRefreshes} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		old := tx.Bucket([]byte("refresh"))
		if old == nil {
			return nil
		}
		err := old.ForEach(func(k, v []byte) error {
			var r struct {
				RefreshToken
				UserID uint64 `json:"user_id"`
				Family string `json:"family"`
				Used   bool   `json:"used"`
			}
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("refresh token %x: %w", k, err)
			}
			if r.Used || r.Family == "" {
				return nil
			}
			t := r.RefreshToken
			t.Hash, t.UserID, t.Family, t.StartedAt = append([]byte(nil), k...), r.UserID, r.Family, r.CreatedAt
			if prev, err := getFamily(tx, familyKey(t.UserID, t.Family)); err == nil && prev.CreatedAt.After(t.CreatedAt) {
				return nil // a family has one unused token; keep the newest if not
			}
			return putFamily(tx, &t)
		})
		if err != nil {
			return err
		}
		return tx.DeleteBucket([]byte("refresh"))
	},
	// 4 → 5: usernames re-indexed under PRECIS folding, with aliases
	// (see UsernameKeys and reindexUsernames).
	func(tx *bolt.Tx) error {
		_, _, err := reindexUsernames(tx, time.Now().UTC())
		return err
	},
}

// stepReindexUsernames is the migration that re-indexes usernames; Open
// logs the accounts it found shadowed.
const stepReindexUsernames = 4

// SchemaVersion is the layout version this build writes; it equals
// len(migrations) (a test holds them together).
const SchemaVersion = 5

func readVersion(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(keySchemaVersion)
	if v == nil {
		return 0, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, fmt.Errorf("schema version %q: %w", v, err)
	}
	return n, nil
}

// migrate brings the file up to SchemaVersion, one step per transaction.
func (db *DB) migrate() error {
	for {
		done := false
		var report func()
		err := db.update(func(tx *bolt.Tx) error {
			v, err := readVersion(tx)
			if err != nil {
				return err
			}
			if v > SchemaVersion {
				return fmt.Errorf("%w: schema version %d, this build knows %d", ErrSchemaTooNew, v, SchemaVersion)
			}
			if v == SchemaVersion {
				done = true
				return nil
			}
			if v == stepReindexUsernames {
				keys, users, err := reindexUsernames(tx, time.Now().UTC())
				if err != nil {
					return fmt.Errorf("migrate schema %d → %d: %w", v, v+1, err)
				}
				report = func() { logShadowed(db.log, keys, users) }
			} else if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrate schema %d → %d: %w", v, v+1, err)
			}
			return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(strconv.Itoa(v+1)))
		})
		if err != nil || done {
			return err
		}
		if report != nil {
			report()
		}
	}
}

func (db *DB) checkVersion() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		v, err := readVersion(tx)
		if err != nil {
			return err
		}
		if v != SchemaVersion {
			return fmt.Errorf("schema version %d, this build needs %d (open it read-write once to migrate)", v, SchemaVersion)
		}
		return nil
	})
}

// Version returns the schema version recorded in the file.
func (db *DB) Version() (int, error) {
	var v int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		v, err = readVersion(tx)
		return err
	})
	return v, err
}
