// Package postgres is gpt2d's store on PostgreSQL, for several gpt2d
// replicas behind a load balancer sharing one database. It implements
// store.Store with the same behaviour as the bbolt store (package
// store/storetest holds both to it).
//
// Concurrency: a *DB is safe for concurrent use, and so is one database
// shared by many processes. Every method is one transaction (READ
// COMMITTED); invariants that span rows hold under concurrency because
// the database enforces them — unique constraints (usernames, key hashes),
// row locks taken with SELECT … FOR UPDATE before read-modify-write
// (users, refresh tokens, a user's key count), a transaction-scoped
// advisory lock where a check reads other rows (the last enabled admin,
// audit sequence order), and atomic upserts (usage counters) — never
// process locks. A transaction that hits a deadlock or serialization
// failure is retried.
//
// Records are kept as JSON (column data) beside the columns that are
// indexed or constrained, so a record reads back exactly as written
// (nanosecond times included) and a field added to a record type needs
// no migration.
//
// Durability: a write method returns nil once PostgreSQL has committed
// the transaction (durable under the server's synchronous_commit).
//
// Availability: when the database cannot be reached, methods fail with
// an error that matches store.ErrUnavailable after at most the operation
// timeout; the pool reconnects by itself when the database returns.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"gpt2d/store"
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// OpTimeout bounds one store operation, waiting for a connection
	// included (0 → 10 s); past it the operation fails with
	// store.ErrUnavailable.
	OpTimeout time.Duration
	// ConnectTimeout bounds establishing one connection when the URL does
	// not set connect_timeout (0 → 5 s).
	ConnectTimeout time.Duration
	// MaxConns is the pool size when the URL does not set pool_max_conns
	// (0 → 16).
	MaxConns int32
	// NoMigrate makes Open refuse a database whose schema is older than
	// this build instead of migrating it (for operators who run `gpt2d
	// store migrate` separately).
	NoMigrate bool
	// CacheTTL bounds how long this process serves a user or API key
	// from memory (0 → 1 s; negative: no cache). Changes made by any
	// replica drop cached entries at once through LISTEN/NOTIFY; the TTL
	// is the backstop should notifications stall (see cache).
	CacheTTL time.Duration
	// Logger receives migration steps and the listener's connection
	// errors (nil → slog.Default()).
	Logger *slog.Logger

	// now is the cache's clock (nil → time.Now): tests move it to expire
	// entries, rather than race the TTL on a loaded machine.
	now func() time.Time
}

// DB is an open PostgreSQL store: a connection pool.
type DB struct {
	pool  *pgxpool.Pool
	opts  Options
	log   *slog.Logger
	cache *cache // nil: disabled

	stopListen context.CancelFunc
	listening  chan struct{} // closed when the listener has stopped
}

var _ store.Store = (*DB)(nil)

// IsURL reports whether spec names a PostgreSQL database (a postgres:// or
// postgresql:// URL) rather than a bbolt file.
func IsURL(spec string) bool {
	for _, p := range []string{"postgres://", "postgresql://"} {
		if len(spec) >= len(p) && spec[:len(p)] == p {
			return true
		}
	}
	return false
}

// Open connects to the database at url and brings its schema to this
// build's version (under an advisory lock, so replicas starting together
// migrate once). A schema newer than this build fails with
// store.ErrSchemaTooNew.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = 10 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = time.Second
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err) // never echo the URL: it may hold a password
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	if !hasParam(url, "pool_max_conns") {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db := &DB{pool: pool, opts: opts, log: opts.Logger}
	if err := db.migrate(ctx, !opts.NoMigrate); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s: %w", db.Where(), err)
	}
	if opts.CacheTTL > 0 {
		db.cache = newCache(opts.CacheTTL, opts.now)
		lctx, stop := context.WithCancel(context.Background())
		db.stopListen, db.listening = stop, make(chan struct{})
		go func() {
			defer close(db.listening)
			db.listen(lctx)
		}()
	}
	return db, nil
}

// hasParam reports whether the URL's query sets name.
func hasParam(url, name string) bool {
	for i := 0; i+len(name) < len(url); i++ {
		if (url[i] == '?' || url[i] == '&') && url[i+1:i+1+len(name)] == name {
			return true
		}
	}
	return false
}

// Where names the database (host, port, name) for messages, without
// credentials.
func (db *DB) Where() string {
	c := db.pool.Config().ConnConfig
	return fmt.Sprintf("postgres %s:%d/%s", c.Host, c.Port, c.Database)
}

// Close stops the cache's listener and closes the pool, waiting for
// connections in use to be returned.
func (db *DB) Close() error {
	if db.stopListen != nil {
		db.stopListen()
		<-db.listening
	}
	db.pool.Close()
	return nil
}

// Kind returns "postgres".
func (db *DB) Kind() string { return "postgres" }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	return wrap("ping", db.pool.Ping(ctx))
}

// ctx returns the context of one operation.
func (db *DB) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), db.opts.OpTimeout)
}

// inTx runs fn in one transaction, retrying it on a deadlock or a
// serialization failure; an error fn returns (a sentinel such as
// store.ErrNotFound) rolls back and is returned as is.
func (db *DB) inTx(op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := db.ctx()
	defer cancel()
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
		var pe *pgconn.PgError
		if attempt < 5 && errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") {
			continue
		}
		return wrap(op, err)
	}
}

// Lock keys of transaction-scoped advisory locks (pg_advisory_xact_lock);
// session-scoped ones are in schema.go.
const (
	lockAdmins    int64 = 0x67707432640001 // changes that may remove an enabled admin
	lockAudit     int64 = 0x67707432640002 // audit appends: sequence order is commit order
	lockUsernames int64 = 0x67707432640003 // new usernames: checked against every key and alias, then inserted
)

// unavailableCodes are the SQLSTATE classes and codes that mean "the
// database cannot serve now": connection exceptions, shutdown, too many
// connections, out of resources.
func unavailableCode(code string) bool {
	switch {
	case len(code) == 5 && code[:2] == "08", // connection exception
		len(code) == 5 && code[:2] == "53",                // insufficient resources
		code == "57P01", code == "57P02", code == "57P03": // admin/crash shutdown, cannot connect now
		return true
	}
	return false
}

// wrap adds op to err and classifies it: the store's sentinel errors pass
// through, errors of an unreachable database match store.ErrUnavailable.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{store.ErrNotFound, store.ErrUsernameTaken, store.ErrLastAdmin, store.ErrTooManyKeys,
		store.ErrTokenReused, store.ErrTokenExpired, store.ErrSchemaTooNew, store.ErrUnavailable} {
		if errors.Is(err, s) {
			return err
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if unavailableCode(pe.Code) {
			return fmt.Errorf("%s: %w: %v", op, store.ErrUnavailable, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return fmt.Errorf("%s: %w: %v", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// EnsureJWTKey returns the signing key kept in table meta, creating it
// with generate on first use; of replicas racing on an empty database,
// the first insert wins and every caller gets its key.
func (db *DB) EnsureJWTKey(generate func() ([]byte, error)) ([]byte, error) {
	var key []byte
	err := db.inTx("jwt key", func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'jwt_key'`).Scan(&key)
		if err == nil {
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		k, err := generate()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('jwt_key', $1) ON CONFLICT (key) DO NOTHING`, k); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'jwt_key'`).Scan(&key)
	})
	if err != nil {
		return nil, fmt.Errorf("jwt key: %w", err)
	}
	return key, nil
}
