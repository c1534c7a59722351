package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrUnavailable reports that the store cannot be reached right now (a
// PostgreSQL server that is down or unreachable). The operation may
// succeed when retried later; the HTTP layer answers 503.
var ErrUnavailable = errors.New("store: unavailable")

// Store is gpt2d's durable state as the rest of the program uses it. It has
// two implementations that behave the same, held together by one
// conformance suite (package store/storetest): *DB, one bbolt file that a
// single process opens, and postgres.DB (package store/postgres), one
// PostgreSQL database that many gpt2d replicas share.
//
// Every method is safe for concurrent use, and atomic: a method that
// changes several records changes all or none of them, and concurrent
// calls behave as if run one after another, across every process that
// shares the store. A write method returns nil only once the change is
// durable. A method added here needs both implementations and a case in
// the conformance suite.
type Store interface {
	// CreateUser stores u, assigning u.ID; of concurrent calls with the
	// same folded username exactly one succeeds, the others get
	// ErrUsernameTaken.
	CreateUser(u *User) error
	// UserByID returns the user with id, or ErrNotFound.
	UserByID(id uint64) (*User, error)
	// UserByUsername returns the user whose folded name matches, or
	// ErrNotFound.
	UserByUsername(name string) (*User, error)
	// ListUsers returns up to limit users in id order, skipping the first
	// skip.
	ListUsers(skip, limit int) ([]User, error)
	// CountUsers returns the number of users.
	CountUsers() (int, error)
	// UpdateUser applies fn to the user with id and stores the result
	// atomically; fn may run more than once and must not change ID or
	// Username. A change that would leave no enabled admin where there
	// was one fails with ErrLastAdmin; an error from fn is returned as is.
	UpdateUser(id uint64, fn func(u *User) error) (*User, error)
	// DeleteUser removes the user, its username, refresh tokens and API
	// keys; the last enabled admin gives ErrLastAdmin. Audit events and
	// usage records are kept.
	DeleteUser(id uint64) error
	// HasAdmin reports whether an enabled admin exists.
	HasAdmin() (bool, error)

	// CreateAPIKey stores k, assigning k.ID; ErrNotFound for a missing
	// owner, ErrTooManyKeys past MaxKeysPerUser.
	CreateAPIKey(k *APIKey) error
	// APIKeyByHash returns the key whose SHA-256 is hash, or ErrNotFound.
	APIKeyByHash(hash []byte) (*APIKey, error)
	// APIKeys returns the keys of a user in creation order.
	APIKeys(userID uint64) ([]APIKey, error)
	// DeleteAPIKey removes key id of user userID; a key of another user
	// is ErrNotFound.
	DeleteAPIKey(userID, id uint64) error
	// TouchAPIKeys records the last use of keys; deleted keys are
	// skipped, times never move backwards.
	TouchAPIKeys(used map[uint64]time.Time) error

	// PutRefreshToken starts a refresh-token family whose live token is t,
	// dropping the user's expired families and, past maxFamilies (0: no
	// cap), the user's oldest; it returns how many live ones it evicted.
	PutRefreshToken(t *RefreshToken, maxFamilies int, now time.Time) (evicted int, err error)
	// RotateRefreshToken consumes the live token oldHash and makes next
	// its family's live token; a token that is not live but names (user,
	// family) of a live family is reuse and revokes it (see
	// DB.RotateRefreshToken for reuse and expiry).
	RotateRefreshToken(oldHash []byte, user uint64, family string, next *RefreshToken, now time.Time) (*RefreshToken, error)
	// RefreshTokenByHash returns the live token whose SHA-256 is hash, or
	// ErrNotFound.
	RefreshTokenByHash(hash []byte) (*RefreshToken, error)
	// RevokeRefreshTokens deletes every refresh-token family of the user,
	// touching only that user's records.
	RevokeRefreshTokens(userID uint64) error
	// CountRefreshFamilies returns the user's live families at now.
	CountRefreshFamilies(userID uint64, now time.Time) (int, error)
	// PruneRefreshTokens deletes every family expired at now and returns
	// how many.
	PruneRefreshTokens(now time.Time) (int, error)

	// AppendAudit appends e, assigning e.Seq (increasing).
	AppendAudit(e *Event) error
	// ListAudit returns up to limit events newest first with Seq < before
	// (0: from the newest).
	ListAudit(before uint64, limit int) ([]Event, error)
	// PruneAudit deletes the oldest events beyond r as of now, never one
	// from the middle, and returns how many (see DB.PruneAudit).
	PruneAudit(r AuditRetention, now time.Time) (int, error)
	// AuditBounds returns the lowest and highest Seq stored (0, 0: none).
	AuditBounds() (first, last uint64, err error)

	// AddUsage adds the records' counts to the stored ones of the same
	// user, UTC day and key.
	AddUsage(records []Usage) error
	// UsageOf returns one user's records between two UTC days inclusive,
	// in date then key order.
	UsageOf(userID uint64, from, to time.Time) ([]Usage, error)
	// AllUsage returns every user's records between two UTC days
	// inclusive, in user, date and key order.
	AllUsage(from, to time.Time) ([]Usage, error)
	// DayTokens returns the tokens a user spent on the UTC day of t.
	DayTokens(userID uint64, t time.Time) (int64, error)

	// EnsureJWTKey returns the JWT signing key kept in the store, creating
	// it with generate on first use; concurrent callers, in any process,
	// all get the same key.
	EnsureJWTKey(generate func() ([]byte, error)) ([]byte, error)

	// Ping reports whether the store is reachable now (ErrUnavailable if
	// not), for /health.
	Ping(ctx context.Context) error
	// Kind names the implementation ("bbolt", "postgres") for /health and
	// logs.
	Kind() string
	// Close releases the store; call it after every other use ended.
	Close() error
}

// Snapshotter is a Store that can write a consistent copy of itself as
// one file (the bbolt store). PostgreSQL is backed up with its own tools
// (pg_dump), so postgres.DB is not one.
type Snapshotter interface {
	// WriteTo writes a consistent snapshot of the whole store to w
	// without blocking writers.
	WriteTo(w io.Writer) (int64, error)
}

var (
	_ Store       = (*DB)(nil)
	_ Snapshotter = (*DB)(nil)
)

// Ping reports whether the file is open: a bbolt store is reachable for
// as long as its process runs.
func (db *DB) Ping(context.Context) error {
	if db.bolt.Path() == "" {
		return ErrUnavailable
	}
	return nil
}

// Kind returns "bbolt".
func (db *DB) Kind() string { return "bbolt" }
