// Package store keeps gpt2d's durable state — users, refresh tokens, API
// keys, token usage, the audit trail and server metadata such as the JWT
// signing key — in one bbolt file.
//
// Concurrency: a *DB is safe for concurrent use by many goroutines. Every
// method runs in its own bbolt transaction; bbolt allows many concurrent
// readers and one writer at a time, so each write method is atomic and
// serialised against the others, and every read sees a consistent
// snapshot. Write methods return only after the transaction is committed
// and fsynced: once a method that changes state has returned nil, the
// change survives a crash (kill -9 or power loss) of the process.
//
// Only one process may open a file at a time (bbolt takes an exclusive
// file lock); Open waits up to Options.Timeout for it.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Errors returned by the store. Test for them with errors.Is.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrUsernameTaken = errors.New("store: username already registered")
	ErrLastAdmin     = errors.New("store: cannot remove the last admin")
	ErrSchemaTooNew  = errors.New("store: file was written by a newer gpt2d")
	ErrLocked        = errors.New("store: file is in use by another process")
)

// Bucket names. Keys of bucketUsers and bucketAudit are 8-byte big-endian
// sequence numbers, so cursor order is creation order.
var (
	bucketMeta      = []byte("meta")          // string key → value
	bucketUsers     = []byte("users")         // user id → JSON User
	bucketUsernames = []byte("usernames")     // folded username → user id
	bucketRefresh   = []byte("refresh")       // sha256(token) → JSON RefreshToken
	bucketAudit     = []byte("audit")         // sequence → JSON Event
	bucketKeys      = []byte("apikeys")       // key id → JSON APIKey
	bucketKeyHashes = []byte("apikey_hashes") // sha256(key) → key id
	bucketUsage     = []byte("usage")         // user id, day, key id → JSON Usage
)

// Keys in bucketMeta.
var (
	keySchemaVersion = []byte("schema_version")
	keyJWTKey        = []byte("jwt_key")
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Timeout bounds the wait for the file lock held by another process;
	// 0 means one second. Open then fails with ErrLocked.
	Timeout time.Duration
	// ReadOnly opens the file without write access (and with a shared lock).
	ReadOnly bool
}

// DB is an open store file.
type DB struct {
	bolt *bolt.DB
}

// Open opens (creating if needed) the store at path, creates its parent
// directory, and migrates the file to the current schema version.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, ReadOnly: opts.ReadOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db := &DB{bolt: b}
	if opts.ReadOnly {
		err = db.checkVersion()
	} else {
		err = db.migrate()
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

// Close releases the file. It waits for open transactions (including a
// running WriteTo) to finish.
func (db *DB) Close() error { return db.bolt.Close() }

// Path returns the file the store was opened from.
func (db *DB) Path() string { return db.bolt.Path() }

// WriteTo writes a consistent snapshot of the whole file to w. It runs in
// one read transaction, so it does not block writers and may run while the
// server is serving; the snapshot is a valid store file.
func (db *DB) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Backup writes a consistent snapshot to the file path, atomically: the
// snapshot goes to a temporary file beside it, is fsynced, then renamed.
func (db *DB) Backup(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := db.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// EnsureJWTKey returns the JWT signing key kept in the store, creating it
// with generate on first use. Generation and storing happen in one write
// transaction, so concurrent callers all get the same key.
func (db *DB) EnsureJWTKey(generate func() ([]byte, error)) ([]byte, error) {
	var key []byte
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if k := meta.Get(keyJWTKey); k != nil {
			key = append([]byte(nil), k...)
			return nil
		}
		k, err := generate()
		if err != nil {
			return err
		}
		key = k
		return meta.Put(keyJWTKey, k)
	})
	if err != nil {
		return nil, fmt.Errorf("jwt key: %w", err)
	}
	return key, nil
}

// StoredJWTKey returns the JWT signing key kept in the store by older
// versions, or nil if there is none.
func (db *DB) StoredJWTKey() ([]byte, error) {
	var key []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if k := tx.Bucket(bucketMeta).Get(keyJWTKey); k != nil {
			key = append([]byte(nil), k...)
		}
		return nil
	})
	return key, err
}

// DeleteJWTKey removes the JWT signing key from the store, so that
// backups no longer carry it (once it lives in a key file).
func (db *DB) DeleteJWTKey() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyJWTKey) == nil {
			return nil
		}
		return meta.Delete(keyJWTKey)
	})
}

func itob(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func btoi(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
