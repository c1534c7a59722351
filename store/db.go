// Package store keeps gpt2d's durable state — users, refresh tokens, API
// keys, token usage, the audit trail and server metadata such as the JWT
// signing key. The rest of the program uses it through the Store
// interface (store.go), which has two implementations held to the same
// behaviour by the conformance suite in store/storetest: DB, one bbolt
// file that one process opens (the default, described below), and
// store/postgres, one PostgreSQL database shared by several replicas,
// which also keeps what replicas must count together (CounterStore,
// QuotaStore).
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
//
// Integrity: Open checks the file before serving from it (Check: meta
// pages, length, page tree) and refuses a damaged or empty one with
// ErrCorrupt; Verify runs the same checks on a snapshot. A write the file
// system refuses for want of space fails with ErrNoSpace and changes
// nothing; the store goes on once space returns.
//
// Bounded state: refresh tokens are one record per session (family),
// capped per user and pruned when expired (PruneRefreshTokens); the audit
// trail is pruned oldest first by age and count (PruneAudit).
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
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
	// ErrCorrupt reports a file that fails the consistency check Open runs
	// (an empty file, bad meta pages, a file shorter than its pages, a
	// broken page tree). Open refuses it rather than serve from it.
	ErrCorrupt = errors.New("store: file fails its consistency check")
	// ErrNoSpace reports a write refused by the file system for want of
	// space (ENOSPC, EDQUOT, EFBIG). Nothing was stored; the same write
	// succeeds once space returns.
	ErrNoSpace = errors.New("store: no space left for the store file")
)

// Bucket names. Keys of bucketUsers and bucketAudit are 8-byte big-endian
// sequence numbers, so cursor order is creation order.
var (
	bucketMeta      = []byte("meta")      // string key → value
	bucketUsers     = []byte("users")     // user id → JSON User
	bucketUsernames = []byte("usernames") // folded username → user id
	// lower-cased username → user id, where it differs from the folded
	// key the user holds (see UsernameKeys)
	bucketUsernameAliases = []byte("username_aliases")
	bucketFamilies        = []byte("refresh_families") // user id | family → JSON RefreshToken (the family's live token)
	bucketRefreshes       = []byte("refresh_hashes")   // sha256(live token) → user id | family
	bucketAudit           = []byte("audit")            // sequence → JSON Event
	bucketKeys            = []byte("apikeys")          // key id → JSON APIKey
	bucketKeyHashes       = []byte("apikey_hashes")    // sha256(key) → key id
	bucketUsage           = []byte("usage")            // user id, day, key id → JSON Usage
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
	// Logger receives what a migration reports (accounts whose names
	// collide, see UsernameKeys); nil discards it.
	Logger *slog.Logger
}

// DB is an open store file.
type DB struct {
	bolt *bolt.DB
	log  *slog.Logger
}

// Open opens (creating if needed) the store at path, creates its parent
// directory, checks the file's consistency (see Check) and migrates it to
// the current schema version. A file that exists but is empty, or fails
// the check, is refused with ErrCorrupt: it is never silently replaced by
// a fresh store.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	// bbolt initialises a zero-length file as a new store; here an empty
	// file is what is left of a store (a failed copy or restore), not a
	// request for a new one.
	if fi, err := os.Stat(path); err == nil {
		if fi.Size() == 0 {
			return nil, fmt.Errorf("open store %s: %w: the file is empty; restore a backup, or remove it to start a new store", path, ErrCorrupt)
		}
		if err := checkMeta(path, fi.Size()); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	b, err := openBolt(path, &bolt.Options{Timeout: opts.Timeout, ReadOnly: opts.ReadOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
	}
	if err != nil {
		if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{bolt: b, log: opts.Logger}
	if err := db.Check(); err != nil {
		b.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
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

// Check verifies the file's consistency in one read transaction: the
// file is at least as long as the pages its meta page claims (bbolt maps
// the file and would fault on a missing page), and every page is reached
// once from the tree or the freelist (bbolt's Tx.Check). It reads the
// whole file, so it costs time in proportion to its size; it does not
// block writers. A failure is ErrCorrupt, with the first problem found.
func (db *DB) Check() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		fi, err := os.Stat(db.bolt.Path())
		if err != nil {
			return err
		}
		if fi.Size() < tx.Size() {
			return fmt.Errorf("%w: the file has %d bytes, its pages need %d (truncated)", ErrCorrupt, fi.Size(), tx.Size())
		}
		var first error
		for err := range tx.Check() { // drain: Check's goroutine sends every problem
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, first)
		}
		return nil
	})
}

// update runs fn in a write transaction, as bolt.DB.Update does, and
// reports a full file system as ErrNoSpace.
func (db *DB) update(fn func(tx *bolt.Tx) error) error { return noSpace(db.bolt.Update(fn)) }

// batch is update through bolt.DB.Batch: concurrent calls share one
// transaction (and one fsync); fn may run more than once.
func (db *DB) batch(fn func(tx *bolt.Tx) error) error { return noSpace(db.bolt.Batch(fn)) }

// noSpace wraps err with ErrNoSpace when the file system refused a write
// for want of space.
func noSpace(err error) error {
	if err != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG)) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// Verify runs the consistency checks of Open on the file at path — not
// empty, valid meta pages, long enough for its pages, a sound page tree —
// without migrating it or checking its schema version: it is for
// snapshots, which may come from another gpt2d version. It opens the file
// read-only (with a shared lock). A failure is ErrCorrupt naming path.
func Verify(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("verify store %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return fmt.Errorf("verify store %s: %w: the file is empty", path, ErrCorrupt)
	}
	if err := checkMeta(path, fi.Size()); err != nil {
		return fmt.Errorf("verify store %s: %w", path, err)
	}
	b, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("verify store %s: %w", path, err)
	}
	defer b.Close()
	if err := (&DB{bolt: b}).Check(); err != nil {
		return fmt.Errorf("verify store %s: %w", path, err)
	}
	return nil
}

// openBolt is bolt.Open, with a panic — bbolt panics on some damaged
// pages rather than returning an error — reported as ErrCorrupt.
func openBolt(path string, opts *bolt.Options) (b *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return bolt.Open(path, 0o600, opts)
}

// checkMeta reads the file's two meta pages (bbolt's layout: a 16-byte
// page header, then magic, version, page size, flags, root bucket,
// freelist page, high-water page id, txid and an FNV-64a checksum) and
// requires one of them to be valid and the file to hold every page the
// newest valid one counts. bbolt maps the file and would fault, not fail,
// on a page past its end, so this runs before bolt.Open.
func checkMeta(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	const (
		headerSize = 16
		metaSize   = 64
		magic      = 0xED0CDAED
	)
	type meta struct {
		pageSize    uint32
		freelist    uint64
		pgid, txid  uint64
		valid       bool
		description string
	}
	read := func(off int64) meta {
		buf := make([]byte, metaSize)
		if _, err := f.ReadAt(buf, off+headerSize); err != nil {
			return meta{description: err.Error()}
		}
		le := binary.LittleEndian
		h := fnv.New64a()
		h.Write(buf[:56])
		switch {
		case le.Uint32(buf[0:]) != magic:
			return meta{description: "bad magic"}
		case le.Uint64(buf[56:]) != h.Sum64():
			return meta{description: "bad checksum"}
		}
		return meta{pageSize: le.Uint32(buf[8:]), freelist: le.Uint64(buf[32:]), pgid: le.Uint64(buf[40:]), txid: le.Uint64(buf[48:]), valid: true}
	}
	m0 := read(0)
	pageSize := int64(os.Getpagesize())
	if m0.valid {
		pageSize = int64(m0.pageSize)
	}
	m1 := read(pageSize)
	best := m0
	if !m0.valid || (m1.valid && m1.txid > m0.txid) {
		best = m1
	}
	if !best.valid {
		return fmt.Errorf("%w: no valid meta page (%s; %s)", ErrCorrupt, m0.description, m1.description)
	}
	if need := int64(best.pgid) * int64(best.pageSize); size < need {
		return fmt.Errorf("%w: the file has %d bytes, its pages need %d (truncated)", ErrCorrupt, size, need)
	}
	// bbolt panics while opening a file whose freelist page is not one.
	const noFreelist, freelistFlag = 1<<64 - 1, 0x10
	if best.freelist != noFreelist {
		var flags [2]byte
		if best.freelist >= best.pgid {
			return fmt.Errorf("%w: freelist page %d past the last page %d", ErrCorrupt, best.freelist, best.pgid)
		}
		if _, err := f.ReadAt(flags[:], int64(best.freelist)*int64(best.pageSize)+8); err != nil {
			return err
		}
		if binary.LittleEndian.Uint16(flags[:]) != freelistFlag {
			return fmt.Errorf("%w: page %d is not the freelist its meta page names", ErrCorrupt, best.freelist)
		}
	}
	return nil
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
	err := db.update(func(tx *bolt.Tx) error {
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
