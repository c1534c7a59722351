package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"gpt2d/store"
)

// activeAdmin mirrors store's rule: an enabled admin counts toward the
// "at least one admin" invariant.
func activeAdmin(u *store.User) bool { return u.Role == store.RoleAdmin && !u.Disabled }

// CreateUser stores u, assigning u.ID. Under an advisory lock, the
// name is checked against every folded name and alias (a name whose
// folded or lower-cased form is one of them is store.ErrUsernameTaken)
// and inserted; the unique index on the folded name holds besides.
func (db *DB) CreateUser(u *store.User) error {
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	folded, lower := store.FoldUsername(u.Username), store.LowerUsername(u.Username)
	var id uint64
	err = db.inTx("create user", func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockUsernames); err != nil {
			return err
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users
WHERE username_folded IN ($1, $2) OR username_lower IN ($1, $2))`, folded, lower).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return store.ErrUsernameTaken
		}
		return tx.QueryRow(ctx,
			`INSERT INTO users (username_folded, username_lower, role, disabled, data) VALUES ($1, NULLIF($2, $1), $3, $4, $5) RETURNING id`,
			folded, lower, string(u.Role), u.Disabled, data).Scan(&id)
	})
	if errors.Is(err, store.ErrUsernameTaken) || isUniqueViolation(err) {
		return store.ErrUsernameTaken
	}
	if err != nil {
		return err
	}
	u.ID = id
	return nil
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// UserByID returns the user with id, or store.ErrNotFound. It is served
// from the cache when it can (see cache for how fresh that is).
func (db *DB) UserByID(id uint64) (*store.User, error) {
	var epoch uint64
	var at time.Time
	if db.cache != nil {
		if u, ok := db.cache.user(id); ok {
			return u, nil
		}
		epoch, at = db.cache.begin(), db.cache.now()
	}
	ctx, cancel := db.ctx()
	defer cancel()
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT id, data FROM users WHERE id = $1`, id))
	if err != nil {
		return nil, wrap("user", err)
	}
	if db.cache != nil {
		db.cache.putUser(u, epoch, at)
	}
	return u, nil
}

// forget drops what a committed change named from this process's cache
// at once; other replicas hear of it through the triggers' notification.
func (db *DB) forget(payload string) {
	if db.cache != nil {
		db.cache.invalidate(payload)
	}
}

// UserByUsername returns the user whose alias or, failing that, folded
// name matches (see store.UsernameKeys), or store.ErrNotFound.
func (db *DB) UserByUsername(name string) (*store.User, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT id, data FROM (
	SELECT 0 AS rank, id, data FROM users WHERE username_lower = $2
	UNION ALL
	SELECT 1, id, data FROM users WHERE username_folded = $1
) m ORDER BY rank LIMIT 1`, store.FoldUsername(name), store.LowerUsername(name)))
	return u, wrap("user", err)
}

// ListUsers returns up to limit users in id order, skipping the first skip.
func (db *DB) ListUsers(skip, limit int) ([]store.User, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT id, data FROM users ORDER BY id OFFSET $1 LIMIT $2`, skip, limit)
	if err != nil {
		return nil, wrap("list users", err)
	}
	users := []store.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			rows.Close()
			return nil, wrap("list users", err)
		}
		users = append(users, *u)
	}
	return users, wrap("list users", rows.Err())
}

// CountUsers returns the number of users.
func (db *DB) CountUsers() (int, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, wrap("count users", err)
}

// HasAdmin reports whether an enabled admin exists.
func (db *DB) HasAdmin() (bool, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND NOT disabled)`).Scan(&ok)
	return ok, wrap("has admin", err)
}

// UpdateUser applies fn to the user with id, holding the row lock from
// the read to the write, so concurrent updates of one user (from any
// replica) apply one after the other. fn may run again if the
// transaction is retried after a deadlock.
func (db *DB) UpdateUser(id uint64, fn func(u *store.User) error) (*store.User, error) {
	var out *store.User
	var fnErr error
	err := db.inTx("update user", func(ctx context.Context, tx pgx.Tx) error {
		u, err := scanUser(tx.QueryRow(ctx, `SELECT id, data FROM users WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		name := u.Username
		wasAdmin := activeAdmin(u)
		if fnErr = fn(u); fnErr != nil {
			return fnErr
		}
		u.ID, u.Username = id, name
		if wasAdmin && !activeAdmin(u) {
			if err := requireOtherAdmin(ctx, tx, id); err != nil {
				return err
			}
		}
		data, err := json.Marshal(u)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET role = $2, disabled = $3, data = $4 WHERE id = $1`,
			id, string(u.Role), u.Disabled, data); err != nil {
			return err
		}
		out = u
		return nil
	})
	db.forget(fmt.Sprintf("user:%d", id))
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteUser removes the user, its API keys (by the foreign key's
// cascade) and its refresh tokens in one transaction; the last enabled
// admin gives store.ErrLastAdmin. Audit events and usage are kept.
func (db *DB) DeleteUser(id uint64) error {
	defer db.forget("all") // the user and every key it held
	return db.inTx("delete user", func(ctx context.Context, tx pgx.Tx) error {
		u, err := scanUser(tx.QueryRow(ctx, `SELECT id, data FROM users WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		if activeAdmin(u) {
			if err := requireOtherAdmin(ctx, tx, id); err != nil {
				return err
			}
		}
		var folded *string
		if err := tx.QueryRow(ctx, `DELETE FROM users WHERE id = $1 RETURNING username_folded`, id).Scan(&folded); err != nil {
			return err
		}
		if folded != nil {
			if err := promoteShadowed(ctx, tx, *folded); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM refresh_families WHERE user_id = $1`, id)
		return err
	})
}

// requireOtherAdmin returns store.ErrLastAdmin unless an enabled admin
// other than id exists. The advisory lock makes such checks take turns
// until commit: of two transactions demoting the last two admins, the
// second reads after the first committed and fails. (Row locks alone
// would not do: each would lock only its own admin.)
func requireOtherAdmin(ctx context.Context, tx pgx.Tx, id uint64) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockAdmins); err != nil {
		return err
	}
	var ok bool
	if err := tx.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM users WHERE id <> $1 AND role = 'admin' AND NOT disabled)`, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return store.ErrLastAdmin
	}
	return nil
}

// scanUser reads (id, data) into a User; no row is store.ErrNotFound.
func scanUser(row pgx.Row) (*store.User, error) {
	var id uint64
	var data []byte
	if err := row.Scan(&id, &data); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, store.ErrNotFound
		}
		return nil, err
	}
	var u store.User
	if err := json.Unmarshal(data, &u); err != nil {
		return nil, fmt.Errorf("user %d: %w", id, err)
	}
	u.ID = id
	return &u, nil
}
