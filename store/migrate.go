package store

import (
	"fmt"
	"strconv"

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
	// 1 → 2: refresh tokens.
	func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketRefresh)
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
}

// SchemaVersion is the layout version this build writes; it equals
// len(migrations) (a test holds them together).
const SchemaVersion = 3

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
		err := db.bolt.Update(func(tx *bolt.Tx) error {
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
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrate schema %d → %d: %w", v, v+1, err)
			}
			return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(strconv.Itoa(v+1)))
		})
		if err != nil || done {
			return err
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
